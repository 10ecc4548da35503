import { createApp } from 'vue'
// Element Plus comes on demand (vite.config.ts): the components a template uses bring their
// own CSS. The services the pages call from script (ElMessage, ElMessageBox) are plain
// imports, so their CSS is imported here, once.
import 'element-plus/es/components/message/style/css'
import 'element-plus/es/components/message-box/style/css'
import App from './App.vue'
import { router } from './router'
import './messages'
import './messagesService'
import './messagesHooks'

createApp(App).use(router).mount('#app')
