const { createClient } = require('wecomgate-client'); // after npm install and 工具 → 构建 npm

const GATEWAY = 'http://127.0.0.1:8080'; // Caddyfile.example: only with 不校验合法域名 ticked
const SIMULATOR = 'http://127.0.0.1:8081'; // its dev interface answers this machine only

// DEMO ONLY. The gateway checks codes with the simulator, not with WeCom, so a real wx.qy.login
// code would be refused: this wx mints codes at the simulator instead, for the user below.
// In a real mini program pass no `wx` at all.
const demoWx = Object.create(wx);
demoWx.qy = {
  login(o) {
    wx.request({
      url: SIMULATOR + '/sim/code',
      method: 'POST',
      header: { 'Content-Type': 'application/json' },
      data: { corp: 'acme', userid: 'zhangsan' },
      success: (r) => (r.data && r.data.code ? o.success({ code: r.data.code }) : o.fail({ errMsg: 'sim: ' + JSON.stringify(r.data) })),
      fail: o.fail,
    });
  },
};

module.exports = createClient({ baseURL: GATEWAY, wx: demoWx });
