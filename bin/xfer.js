#!/usr/bin/env node
// The CLI lives in the compiled library; `npm install` builds it (the `prepare` script).
import('../dist/cli/main.js').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli')) {
    console.error('xfer: the library is not built yet; run `npm install` (or `npm run build`) in the xfer folder.');
    process.exit(1);
  }
  throw error;
});
