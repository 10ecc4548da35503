import { createApp } from 'vue'
import App from './App.vue'
import './messages'

createApp(App).mount('#app')
