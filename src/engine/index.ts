export { BACKEND_NAMES, type BackendName, backendName, initBackend } from './backend.js';
