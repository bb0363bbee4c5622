/**
 * wecomgate client kit for WeCom (企业微信) mini programs: signs the user in through the wecomgate
 * gateway with `wx.qy.login`, keeps the session token and adds it to the gateway's requests,
 * uploads and downloads. Dependency-free CommonJS in plain ES2015 (no async/await, no `?.`): no
 * build step on any base library. Usage: docs/client.md; types: wecomgate.d.ts.
 */
'use strict';

/** A token this close to its expiry counts as expired (clock skew, slow links). */
const EXPIRY_MARGIN_MS = 30 * 1000;

/** The mini program's global `wx`, when there is one. */
const globalWx = typeof wx !== 'undefined' ? wx : undefined; // eslint-disable-line no-undef

/** Messages for the people who see the errors: WeCom users are mostly Chinese staff. */
const zhCN = {
  invalid_request: '请求有误，请稍后再试',
  unauthenticated: '登录已失效，请重新登录',
  invalid_code: '登录凭证已失效，请重试',
  corp_not_allowed: '你所在的企业未开通本应用',
  wrong_corp: '登录的企业与本应用不符',
  user_not_allowed: '你没有使用本应用的权限',
  user_inactive: '你的企业微信账号已停用或未激活',
  review_forbidden: '审核账号不能访问此内容',
  rate_limited: '尝试次数过多，请稍后再试',
  wecom_unavailable: '企业微信暂时不可用，请稍后再试',
  wecom_error: '服务配置有误，请联系管理员',
  not_found: '请求的内容不存在',
  method_not_allowed: '不支持的请求方式',
  network_error: '网络不稳定，请稍后再试',
  not_wecom: '请在企业微信中打开本小程序',
  qy_login_failed: '企业微信登录失败，请重试',
  qy_consent_refused: '未获得你的授权，无法获取该信息',
  login_timeout: '登录超时，请重试',
  signed_out: '已退出登录',
  aborted: '请求已取消',
  http_error: '请求失败（HTTP {status}）',
};

/** The value of a header whatever case the platform gave its name in (HTTP/2 gives lower case). */
function headerValue(h, name) {
  if (!h) return undefined;
  const want = name.toLowerCase();
  for (const k in h) if (k.toLowerCase() === want) return h[k];
  return undefined;
}

/** Retry-After in seconds (delta-seconds or an HTTP date), or undefined. */
function retryAfter(h) {
  const v = headerValue(h, 'Retry-After');
  if (v === undefined || v === '') return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v);
  const t = Date.parse(v);
  return isNaN(t) ? undefined : Math.max(0, Math.ceil((t - Date.now()) / 1000));
}

function parse(data) {
  if (typeof data !== 'string') return data;
  try { return JSON.parse(data); } catch (e) { return data; }
}

/**
 * Only the gateway's 401 carries its challenge; a backend's own 401 (even one answering
 * {"error":"unauthenticated"}) must not cause a new login and a second POST.
 */
function isGateway401(res) {
  return res.statusCode === 401 && /realm="?wecom"?/i.test(String(headerValue(res.header, 'WWW-Authenticate') || ''));
}

/** scheme://host[:port], lower case, default port dropped: what the token may be sent to. */
function originOf(url) {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(url);
  if (!m) return '';
  const scheme = m[1].toLowerCase();
  const host = m[2].toLowerCase().replace(scheme === 'https' ? /:443$/ : /:80$/, '');
  return scheme + '://' + host;
}

/**
 * Creates a client for one gateway. Options and methods: wecomgate.d.ts and docs/client.md.
 * @param {import('../wecomgate').ClientOptions} options
 * @returns {import('../wecomgate').Client}
 */
function createClient(options) {
  const opts = options || {};
  const wx = opts.wx || globalWx;
  if (!wx || typeof wx.request !== 'function') throw new TypeError('wecomgate: no wx object');
  if (!opts.baseURL) throw new TypeError('wecomgate: baseURL is required');
  const base = String(opts.baseURL).replace(/\/+$/, '');
  const origin = originOf(base);
  const prefix = '/' + String(opts.endpoints || '/wecom').replace(/^\/+|\/+$/g, '');
  const key = opts.storageKey || 'wecomgate';
  const loginTimeout = opts.loginTimeout > 0 ? opts.loginTimeout : 15000;
  const messages = opts.messages === false ? {} : Object.assign({}, zhCN, opts.messages);
  let inFlight = null; // the code login every caller waits on
  let inFlightCorp = ''; // the corp it was asked for explicitly
  let epoch = 0; // bumped by logout and by a timed-out login: results of older logins are dropped
  let mem = {}; // the session when storage fails, so a broken storage does not mean a login per request
  let memOnly = false;

  /**
   * @param {string} code the gateway's error code or one of the kit's own
   * @param {string} [detail] the gateway's (English) message or the platform's errMsg
   */
  function makeError(code, status, detail, extra) {
    const tpl = messages[code] || (/^http_/.test(code) && messages.http_error);
    const err = new Error(tpl ? String(tpl).replace('{status}', status) : detail || code);
    err.name = 'WecomgateError';
    err.code = code;
    err.status = status;
    err.detail = detail || '';
    return Object.assign(err, extra);
  }

  function fromResponse(res) {
    const body = parse(res.data);
    const known = body && typeof body.error === 'string';
    const extra = { data: res.data, header: res.header };
    if (known && body.corp) extra.corp = body.corp;
    const ra = retryAfter(res.header);
    if (ra !== undefined) extra.retryAfter = ra;
    const code = known ? body.error : isGateway401(res) ? 'unauthenticated' : 'http_' + res.statusCode;
    return makeError(code, res.statusCode, (known && body.message) || 'HTTP ' + res.statusCode, extra);
  }

  // The session entry is { corp, token, expiresAt, user }; corp is the remembered corp name.
  function load() {
    if (memOnly) return mem;
    let v;
    try { v = wx.getStorageSync(key); } catch (e) { memOnly = true; return mem; }
    return v && typeof v === 'object' ? v : {};
  }
  function save(v) {
    mem = v;
    if (!memOnly) try { wx.setStorageSync(key, v); } catch (e) { memOnly = true; }
  }
  function clear() {
    mem = {};
    try { wx.removeStorageSync(key); } catch (e) { memOnly = true; }
  }
  function dropToken(token) {
    const s = load();
    if (s.token && (!token || s.token === token)) save(s.corp ? { corp: s.corp } : {});
  }

  function session() {
    const s = load();
    if (!s.token || !(s.expiresAt - EXPIRY_MARGIN_MS > Date.now())) return null;
    return Object.assign({ token: s.token, expiresAt: s.expiresAt }, s.user);
  }

  function resolveURL(url) {
    url = String(url || '');
    return /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : base + '/' + url.replace(/^\/+/, '');
  }

  /** wx.request as a Promise: resolves with every HTTP status, rejects only when no response came. */
  function send(o) {
    return new Promise((resolve, reject) => {
      const req = Object.assign({}, o, {
        url: resolveURL(o.url),
        success: resolve,
        fail: (e) => reject(makeError('network_error', 0, (e && e.errMsg) || 'request failed')),
      });
      delete req.complete;
      wx.request(req);
    });
  }

  function post(endpoint, data, token) {
    const header = { 'Content-Type': 'application/json' };
    if (token) header.Authorization = 'Bearer ' + token;
    return send({ url: prefix + endpoint, method: 'POST', data: data, header: header, timeout: loginTimeout });
  }

  function qyCode() {
    return new Promise((resolve, reject) => {
      if (!wx.qy || typeof wx.qy.login !== 'function') {
        reject(makeError('not_wecom', 0, 'wx.qy.login exists only inside WeCom; use reviewLogin'));
        return;
      }
      wx.qy.login({
        timeout: loginTimeout,
        success: (r) => (r && r.code ? resolve(r.code) : reject(makeError('qy_login_failed', 0, 'wx.qy.login gave no code'))),
        fail: (e) => reject(makeError('qy_login_failed', 0, (e && e.errMsg) || 'wx.qy.login failed')),
      });
    });
  }

  /** Stores the session a login answered, unless a logout (or the timeout) came in between. */
  function signedIn(res, corp, since) {
    const b = parse(res.data);
    if (res.statusCode !== 200 || !b || !b.token) throw fromResponse(res);
    if (since !== epoch) throw makeError('signed_out', 0, 'signed out while the login was under way');
    const user = { userid: b.userid, corpid: b.corpid, corp: b.corp, name: b.name, review: !!b.review };
    const s = { token: b.token, expiresAt: Date.now() + (Number(b.expires_in) || 0) * 1000, user: user };
    if (corp) s.corp = corp;
    save(s);
    return session() || Object.assign({ token: s.token, expiresAt: s.expiresAt }, user);
  }

  function codeLogin(explicit) {
    const since = epoch;
    const remembered = load().corp;
    let corp = explicit || remembered || opts.corp || '';
    let keep = explicit || remembered;
    const retried = {}; // each cure is tried once, so a login ends after at most four codes
    const attempt = () => qyCode()
      .then((code) => post('/login', corp ? { code: code, corp: corp } : { code: code }))
      .then((res) => {
        if (res.statusCode === 200) return signedIn(res, keep, since);
        const err = fromResponse(res);
        if (since !== epoch) throw err;
        if (!retried.corp && err.code === 'wrong_corp' && err.corp && err.corp !== corp) {
          // The code belongs to another corp of the gateway: it is spent, so take a fresh one.
          retried.corp = true;
          corp = keep = err.corp;
          return attempt();
        }
        if (!retried.memory && !explicit && remembered && corp === remembered && err.status === 400) {
          // The remembered corp may be gone from the gateway's configuration.
          retried.memory = true;
          corp = opts.corp || '';
          keep = undefined;
          save({});
          return attempt();
        }
        if (!retried.code && err.code === 'invalid_code') {
          // Typically the app went to the background between wx.qy.login and the POST.
          retried.code = true;
          return attempt();
        }
        throw err;
      });
    return attempt();
  }

  /** The shared login, bounded by loginTimeout so that a stuck wx.qy.login cannot block for ever. */
  function startLogin(corp) {
    const p = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        epoch++; // a late answer of this login is not stored
        reject(makeError('login_timeout', 0, 'no login within ' + loginTimeout + ' ms'));
      }, loginTimeout);
      codeLogin(corp).then(
        (s) => { clearTimeout(timer); resolve(s); },
        (e) => { clearTimeout(timer); reject(e); });
    });
    const settled = () => { if (inFlight === shared) inFlight = null; };
    const shared = p.then((s) => { settled(); return s; }, (e) => { settled(); throw e; });
    inFlight = shared;
    inFlightCorp = corp;
    return shared;
  }

  function login(o) {
    const corp = (o && o.corp) || '';
    if (!inFlight) return startLogin(corp);
    if (corp && corp !== inFlightCorp) {
      // Another login is under way for another corp: this one follows it rather than being lost.
      const after = inFlight.then(() => {}, () => {});
      const chained = after.then(() => startLogin(corp));
      inFlight = chained;
      inFlightCorp = corp;
      chained.then(() => { if (inFlight === chained) inFlight = null; }, () => { if (inFlight === chained) inFlight = null; });
      return chained;
    }
    return inFlight;
  }

  function reviewLogin(username, password) {
    const since = epoch;
    return post('/review/login', { username: username, password: password })
      .then((res) => signedIn(res, load().corp, since));
  }

  /** Checked on every call: WeCom has been seen to leave `environment` out, and then `wx.qy` tells. */
  function isWeCom() {
    if (wx.qy && typeof wx.qy.login === 'function') return true;
    try { return wx.getSystemInfoSync().environment === 'wxwork'; } catch (e) { return false; }
  }

  function detectWeCom() {
    return new Promise((resolve) => {
      if (isWeCom() || typeof wx.getSystemInfo !== 'function') { resolve(isWeCom()); return; }
      wx.getSystemInfo({
        success: (info) => resolve(!!info && info.environment === 'wxwork'),
        fail: () => resolve(false),
      });
    });
  }

  function getToken() {
    const s = session();
    if (s) return Promise.resolve(s.token);
    if (inFlight || isWeCom()) return login().then((n) => n.token);
    return Promise.resolve('');
  }

  /** After the gateway's 401 for `stale`: the token another request already got, or a new login's. */
  function relogin(stale) {
    const s = session();
    if (s && s.token !== stale) return Promise.resolve(s.token);
    dropToken(stale);
    return login().then((n) => n.token);
  }

  /**
   * The common path of request, uploadFile and downloadFile: token for the gateway's origin only,
   * one new login and one resend on the gateway's 401, and an abort that works before, during and
   * between the sends. `start(options, done, fail)` starts one platform task and returns it.
   */
  function wrap(o, start) {
    const options = typeof o === 'string' ? { url: o } : Object.assign({}, o);
    delete options.success; delete options.fail; delete options.complete;
    options.url = resolveURL(options.url);
    const ours = originOf(options.url) === origin;
    let task = null;
    let aborted = false;
    const progress = [];
    let used = '';
    const once = (token) => new Promise((resolve, reject) => {
      if (aborted) { reject(makeError('aborted', 0, 'aborted')); return; }
      used = token;
      const header = Object.assign({}, options.header);
      if (token) {
        // Case-insensitively: a caller's `authorization` next to ours would go out twice.
        Object.keys(header).forEach((k) => { if (k.toLowerCase() === 'authorization') delete header[k]; });
        header.Authorization = 'Bearer ' + token;
      }
      let seen = null; // headers from onHeadersReceived: uploadFile and downloadFile's success has none
      task = start(Object.assign({}, options, { header: header }), (res) => {
        if (!res.header && seen) res = Object.assign({}, res, { header: seen });
        resolve(res);
      }, (e) => {
        const msg = (e && e.errMsg) || 'request failed';
        reject(makeError(aborted || /abort/i.test(msg) ? 'aborted' : 'network_error', 0, msg));
      });
      if (task && typeof task.onHeadersReceived === 'function') task.onHeadersReceived((r) => { seen = r && r.header; });
      if (task && typeof task.onProgressUpdate === 'function') progress.forEach((cb) => task.onProgressUpdate(cb));
    });
    const p = (ours ? getToken() : Promise.resolve('')).then(once)
      .then((res) => (ours && isGateway401(res) && isWeCom() ? relogin(used).then(once) : res))
      .then((res) => {
        if (res.statusCode < 400) return res;
        if (ours && isGateway401(res)) dropToken(used);
        throw fromResponse(res);
      });
    p.abort = () => {
      aborted = true;
      if (task && typeof task.abort === 'function') task.abort();
    };
    p.onProgressUpdate = (cb) => {
      progress.push(cb);
      if (task && typeof task.onProgressUpdate === 'function') task.onProgressUpdate(cb);
    };
    return p;
  }

  function request(o) {
    return wrap(o, (req, done, fail) => wx.request(Object.assign(req, { success: done, fail: fail })));
  }

  /** wx.uploadFile answers its body as text; the gateway's JSON errors are parsed for the Error. */
  function uploadFile(o) {
    return wrap(o, (req, done, fail) => wx.uploadFile(Object.assign(req, { success: done, fail: fail })));
  }

  /** A failed download leaves the error body in a temp file: read it, so the Error has its code. */
  function downloadFile(o) {
    return wrap(o, (req, done, fail) => wx.downloadFile(Object.assign(req, {
      success: (res) => {
        if (res.statusCode >= 400 && res.tempFilePath && res.data === undefined) {
          try { res = Object.assign({}, res, { data: wx.getFileSystemManager().readFileSync(res.tempFilePath, 'utf8') }); } catch (e) { /* no body then */ }
        }
        done(res);
      },
      fail: fail,
    })));
  }

  /**
   * wx.qy.getMobile, getEmail or getEnterpriseUserInfo, decrypted by the gateway (POST
   * {endpoints}/decrypt). WeCom encrypts with the session_key of the user's latest wx.qy.login, and
   * the gateway decrypts with the one of the token's login: so a fresh login always comes first,
   * even with a valid token. No second attempt on any error: another login would change the key.
   */
  function decrypted(api) {
    if (!wx.qy || typeof wx.qy[api] !== 'function') {
      return Promise.reject(makeError('not_wecom', 0, 'no wx.qy.' + api + ': not inside WeCom (or a WeCom too old for it)'));
    }
    return login()
      .then((s) => new Promise((resolve, reject) => {
        wx.qy[api]({
          success: (r) => (r && r.encryptedData && r.iv
            ? resolve({ token: s.token, data: { encrypted_data: r.encryptedData, iv: r.iv } })
            : reject(makeError('qy_consent_refused', 0, 'wx.qy.' + api + ' gave no encryptedData'))),
          fail: (e) => reject(makeError('qy_consent_refused', 0, (e && e.errMsg) || 'wx.qy.' + api + ' failed')),
        });
      }))
      .then((x) => post('/decrypt', x.data, x.token).then((res) => {
        const b = parse(res.data);
        if (res.statusCode === 200 && b && typeof b === 'object') return b;
        if (isGateway401(res)) dropToken(x.token);
        throw fromResponse(res);
      }));
  }

  function logout() {
    const s = load();
    epoch++; // a login under way now ends signed out
    inFlight = null;
    clear();
    if (!s.token) return Promise.resolve();
    return post('/logout', {}, s.token).then((res) => {
      if (res.statusCode >= 400) throw fromResponse(res);
    });
  }

  return {
    isWeCom, detectWeCom, login, reviewLogin, request, uploadFile, downloadFile, getToken, logout, session,
    getMobile: () => decrypted('getMobile'),
    getEmail: () => decrypted('getEmail'),
    getEnterpriseUserInfo: () => decrypted('getEnterpriseUserInfo'),
  };
}

module.exports = { createClient, zhCN };
