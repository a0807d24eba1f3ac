import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built into web/dist, which netbird-server serves at / (src/server/static.ts). During `vite dev`
// the API, identity provider and health endpoints are proxied to a netbird-server on :33073.
const target = process.env.NB_DEV_SERVER ?? 'http://127.0.0.1:33073';

export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: { '/api': target, '/oauth2': target, '/health': target },
  },
});
