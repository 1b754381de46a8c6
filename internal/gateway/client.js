// dpaas failover client, served by every instance at /dpaas/client.js.
//
// Load it from any instance's gateway:
//
//   <script src="/dpaas/client.js"></script>
//   const res = await dpaas.fetch('/api/rides', {method: 'POST', body});
//
// dpaas.fetch takes a path and the options of window.fetch, and sends the
// request to the fastest healthy mirror of the DApp: it reads the mirror
// list (/dpaas/mirrors), times /dpaas/ping on each mirror that has a
// gateway, and uses only the mirrors the directory verified as running
// approved code (all healthy ones while it verified none, as before any
// release is approved). When a mirror fails (a network error, a timeout or
// a 5xx), it is marked down for a while and the same request is sent to
// the next one, so the page keeps working when the instance that served
// it stops. The list is kept in localStorage, so a page whose own origin
// died still reaches the others. The user's identity is the user's own
// key in the browser, so any instance can serve any user: nothing is lost
// by switching.
//
// Requests may be sent more than once (to the next mirror after a
// failure): the DApp's API should make them idempotent (signed requests
// with a nonce do). A body must be replayable (a string, Blob, FormData,
// ArrayBuffer or URLSearchParams, not a stream).
//
// Other calls: dpaas.configure(options), dpaas.refresh() (re-read the
// list and re-time the mirrors), dpaas.mirrors() (the known mirrors),
// dpaas.current() (the URL in use). A 'dpaas:switch' event is dispatched
// on window when the mirror in use changes.
(function (global) {
  'use strict';

  var STORE = 'dpaas.mirrors.v1';
  var script = global.document && global.document.currentScript;
  var home = base(script && script.src ? script.src : global.location.href);

  var opts = {
    // The page's own origin is used while its round trip is within this
    // many milliseconds of the fastest: its requests need no CORS
    // preflight.
    originBias: 20,
    // Each attempt of a request is abandoned after this many ms.
    timeout: 8000,
    // A ping or mirror-list request is abandoned after this many ms.
    pingTimeout: 2000,
    // A mirror that failed is not tried again for this many ms, unless
    // every other one fails too.
    downFor: 30000,
    // The list is re-read at most this often, in ms, on a request.
    refreshEvery: 60000
  };

  var known = {};   // base URL -> {url, id, verified, online}
  var down = {};    // base URL -> ms until it may be tried again
  var order = [];   // healthy mirrors, best first
  var current = null;
  var refreshed = 0;
  var updating = null;

  function now() { return Date.now(); }

  // base is a gateway URL's origin and path, without a trailing slash.
  function base(u) {
    try {
      var x = new URL(u, global.location.href);
      if (x.protocol !== 'http:' && x.protocol !== 'https:') { return null; }
      var p = x.pathname.replace(/\/dpaas\/client\.js$/, '').replace(/\/+$/, '');
      return x.origin + p;
    } catch (e) {
      return null;
    }
  }

  function load() {
    try {
      var saved = JSON.parse(global.localStorage.getItem(STORE) || 'null');
      if (saved && saved.mirrors) {
        saved.mirrors.forEach(function (m) {
          var u = base(m.url);
          if (u) { known[u] = {url: u, id: m.id || '', verified: !!m.verified, online: true}; }
        });
      }
    } catch (e) { /* no storage, or garbage in it: start from the origin */ }
    if (!known[home]) { known[home] = {url: home, id: '', verified: false, online: true}; }
  }

  function save() {
    try {
      var list = Object.keys(known).map(function (u) {
        return {url: u, id: known[u].id, verified: known[u].verified};
      });
      global.localStorage.setItem(STORE, JSON.stringify({saved: now(), mirrors: list}));
    } catch (e) { /* storage full or denied: the list lives in memory */ }
  }

  // timed fetches url, giving up after ms or when signal aborts.
  function timed(url, init, ms, signal) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(new Error('dpaas: timeout after ' + ms + ' ms')); }, ms);
    var onAbort = function () { ctl.abort(signal.reason); };
    if (signal) {
      if (signal.aborted) { ctl.abort(signal.reason); } else { signal.addEventListener('abort', onAbort); }
    }
    var i = Object.assign({}, init || {}, {signal: ctl.signal});
    return global.fetch(url, i).finally(function () {
      clearTimeout(timer);
      if (signal) { signal.removeEventListener('abort', onAbort); }
    });
  }

  // refresh reads the mirror list from the first gateway that answers:
  // the page's origin, the mirror in use, then the others known. It
  // resolves to the URL that answered, or null.
  function refresh() {
    var sources = [home];
    if (current && sources.indexOf(current) < 0) { sources.push(current); }
    Object.keys(known).forEach(function (u) { if (sources.indexOf(u) < 0) { sources.push(u); } });
    var i = 0;
    function next() {
      if (i >= sources.length) { return Promise.resolve(null); }
      var src = sources[i++];
      return timed(src + '/dpaas/mirrors', {cache: 'no-store'}, opts.pingTimeout).then(function (res) {
        if (!res.ok) { throw new Error('dpaas: mirror list: status ' + res.status); }
        return res.json();
      }).then(function (list) {
        var fresh = {};
        fresh[home] = known[home];
        (list.mirrors || []).forEach(function (m) {
          var u = m.gateway && base(m.gateway);
          if (u) { fresh[u] = {url: u, id: m.id, verified: !!m.verified, online: !!m.online}; }
        });
        // The gateway that answered is up, whatever the list says of it.
        if (!fresh[src]) { fresh[src] = {url: src, id: list.self || '', verified: false, online: true}; }
        fresh[src].online = true;
        fresh[src].id = list.self || fresh[src].id;
        known = fresh;
        refreshed = now();
        save();
        return src;
      }).catch(function () { return next(); });
    }
    return next();
  }

  function ping(m) {
    var t0 = global.performance.now();
    return timed(m.url + '/dpaas/ping', {cache: 'no-store'}, opts.pingTimeout).then(function (res) {
      if (!res.ok) { throw new Error('dpaas: ping: status ' + res.status); }
      return res.json();
    }).then(function (body) {
      // Another instance at a mirror's address (a port taken over after a
      // restart) is not that mirror.
      if (m.id && body.id !== m.id) { throw new Error('dpaas: ping: ' + m.url + ' is ' + body.id + ', not ' + m.id); }
      return {url: m.url, id: body.id, verified: m.verified, rtt: global.performance.now() - t0};
    }).catch(function () {
      down[m.url] = now() + opts.downFor;
      return null;
    });
  }

  // rank times every mirror that may be up and orders the healthy ones.
  function rank() {
    var cands = Object.keys(known).map(function (u) { return known[u]; }).filter(function (m) {
      return m.online && !(down[m.url] > now());
    });
    return Promise.all(cands.map(ping)).then(function (rs) {
      var pool = rs.filter(function (r) { return r && trusted(r.url); });
      pool.sort(function (a, b) { return a.rtt - b.rtt; });
      var mine = pool.findIndex(function (r) { return r.url === home; });
      if (mine > 0 && pool[mine].rtt <= pool[0].rtt + opts.originBias) {
        pool.unshift(pool.splice(mine, 1)[0]);
      }
      pool.forEach(function (r) { if (known[r.url]) { known[r.url].id = r.id; known[r.url].rtt = r.rtt; } });
      order = pool.map(function (r) { return r.url; });
      return order;
    });
  }

  function update() {
    if (!updating) {
      updating = refresh().then(rank).finally(function () { updating = null; });
    }
    return updating;
  }

  function use(u) {
    if (u === current) { return; }
    var from = current;
    current = u;
    try {
      global.dispatchEvent(new CustomEvent('dpaas:switch', {detail: {from: from, to: u}}));
    } catch (e) { /* no events: nothing listens */ }
  }

  function markDown(u) {
    down[u] = now() + opts.downFor;
    order = order.filter(function (x) { return x !== u; });
    if (current === u) { current = null; }
  }

  // trusted reports whether requests may go to u: when the directory
  // verified any mirror, only verified ones are used.
  function trusted(u) {
    var anyVerified = Object.keys(known).some(function (x) { return known[x].verified; });
    return !anyVerified || (known[u] && known[u].verified);
  }

  // candidates lists where to send a request: the mirror in use, the
  // ranked ones, then those marked down (better late than never).
  function candidates() {
    var out = [];
    if (current && trusted(current)) { out.push(current); }
    order.forEach(function (u) { if (out.indexOf(u) < 0 && !(down[u] > now())) { out.push(u); } });
    Object.keys(known).forEach(function (u) {
      if (out.indexOf(u) < 0 && known[u].online && trusted(u)) { out.push(u); }
    });
    return out;
  }

  function dfetch(path, init) {
    if (typeof path !== 'string' || path.charAt(0) !== '/') {
      return Promise.reject(new TypeError('dpaas.fetch: want a path starting with /'));
    }
    var signal = init && init.signal;
    var tried = {};
    var lastErr = null;
    var lastRes = null;
    var round = 0;

    function attempt(list) {
      var u = null;
      while (list.length > 0 && !u) {
        var x = list.shift();
        if (!tried[x]) { u = x; }
      }
      if (!u) {
        if (round++ > 0) {
          if (lastRes) { return Promise.resolve(lastRes); }
          return Promise.reject(lastErr || new Error('dpaas: no mirror answered'));
        }
        // Every mirror known failed: re-read the list once, it may name others.
        return update().then(function () { return attempt(candidates()); });
      }
      tried[u] = true;
      return timed(u + path, init, opts.timeout, signal).then(function (res) {
        if (res.status >= 500) {
          lastRes = res;
          markDown(u);
          return attempt(list);
        }
        use(u);
        return res;
      }, function (err) {
        if (signal && signal.aborted) { throw err; }
        lastErr = err;
        markDown(u);
        return attempt(list);
      });
    }

    var ready = (order.length === 0 || now() - refreshed > opts.refreshEvery) ? update() : Promise.resolve();
    return ready.then(function () { return attempt(candidates()); });
  }

  load();

  global.dpaas = {
    fetch: dfetch,
    configure: function (o) { Object.assign(opts, o || {}); },
    refresh: function () {
      return refresh().then(function (src) { return rank().then(function () { return src; }); });
    },
    mirrors: function () {
      return Object.keys(known).map(function (u) {
        var m = known[u];
        return {url: u, id: m.id, verified: m.verified, online: m.online, rtt: m.rtt, down: down[u] > now()};
      });
    },
    current: function () { return current; }
  };
})(window);
