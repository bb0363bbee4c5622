// The demo talks to Caddyfile.example on this machine (gateway :8080, WeCom simulator :8081).
const api = require('./api.js');

App({
  onLaunch() {
    // Sign in early inside WeCom; the page's first request waits for this same login.
    if (api.isWeCom()) api.login().catch(() => { /* the page shows the error */ });
  },
});
