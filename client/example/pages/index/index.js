const api = require('../../api.js');

Page({
  data: { inWeCom: false, user: null, result: '', error: '', username: 'reviewer', password: '' },

  onLoad() {
    wx.hideShareMenu({ menus: ['shareAppMessage', 'shareTimeline'] }); // a page API: every page
    this.setData({ inWeCom: api.isWeCom(), user: api.session() });
    if (this.data.inWeCom || this.data.user) this.load();
  },

  load() {
    api.request('/api/orders?page=1')
      .then((res) => this.setData({ result: JSON.stringify(res.data, null, 2), user: api.session(), error: '' }))
      .catch((err) => this.fail(err));
  },

  onUsername(e) { this.setData({ username: e.detail.value }); },
  onPassword(e) { this.setData({ password: e.detail.value }); },
  reviewLogin() {
    api.reviewLogin(this.data.username, this.data.password)
      .then((user) => { this.setData({ user, password: '' }); this.load(); })
      .catch((err) => this.fail(err));
  },

  logout() {
    api.logout().catch(() => {}).then(() => this.setData({ user: null, result: '' }));
  },

  // err.message is already Chinese (the kit's zh-CN map); err.retryAfter is in seconds.
  fail(err) {
    const wait = err.retryAfter ? '（' + err.retryAfter + ' 秒后再试）' : '';
    this.setData({ error: err.message + wait });
    if (err.code === 'unauthenticated') this.setData({ user: null });
  },
  // Deliberately no onShareAppMessage / onShareTimeline: defining them turns sharing back on.
});
