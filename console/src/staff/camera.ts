// Camera scanning: the browser's BarcodeDetector where it exists (Chromium on Android,
// ChromeOS, macOS), else html5-qrcode, loaded only when the camera is opened. Browsers
// give the camera only to secure pages: HTTPS, or localhost.

export interface CameraScan {
  stop(): Promise<void>
}

export function cameraAllowed(): boolean {
  return window.isSecureContext && !!navigator.mediaDevices?.getUserMedia
}

interface Detector {
  detect(source: HTMLVideoElement): Promise<Array<{ rawValue: string }>>
}
type DetectorClass = new (options: { formats: string[] }) => Detector

/**
 * Starts scanning into ``host`` (an empty element the caller shows); ``onCode`` gets the
 * first code read, after which scanning stops by itself.
 */
export async function startCamera(host: HTMLElement, onCode: (text: string) => void): Promise<CameraScan> {
  const Native = (window as unknown as { BarcodeDetector?: DetectorClass }).BarcodeDetector
  if (Native) return startNative(Native, host, onCode)
  return startLibrary(host, onCode)
}

async function startNative(Native: DetectorClass, host: HTMLElement, onCode: (text: string) => void): Promise<CameraScan> {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } })
  const video = document.createElement('video')
  video.setAttribute('playsinline', '')
  video.muted = true
  video.srcObject = stream
  video.style.width = '100%'
  host.replaceChildren(video)
  await video.play()
  const detector = new Native({ formats: ['qr_code', 'code_128'] })
  let stopped = false
  const stop = async () => {
    stopped = true
    for (const track of stream.getTracks()) track.stop()
    host.replaceChildren()
  }
  const tick = async () => {
    if (stopped) return
    try {
      const [found] = await detector.detect(video)
      if (found?.rawValue) {
        await stop()
        onCode(found.rawValue)
        return
      }
    } catch {
      // A frame that could not be read: try the next one.
    }
    window.setTimeout(tick, 150)
  }
  void tick()
  return { stop }
}

async function startLibrary(host: HTMLElement, onCode: (text: string) => void): Promise<CameraScan> {
  const { Html5Qrcode, Html5QrcodeSupportedFormats } = await import('html5-qrcode')
  host.id ||= 'till-camera'
  const reader = new Html5Qrcode(host.id, {
    formatsToSupport: [Html5QrcodeSupportedFormats.QR_CODE, Html5QrcodeSupportedFormats.CODE_128],
    verbose: false,
  })
  let running = true
  const stop = async () => {
    if (!running) return
    running = false
    try {
      await reader.stop()
    } finally {
      reader.clear()
    }
  }
  await reader.start(
    { facingMode: 'environment' },
    { fps: 10, qrbox: { width: 250, height: 250 } },
    (text) => {
      void stop().then(() => onCode(text))
    },
    () => {
      // No code in this frame.
    },
  )
  return { stop }
}
