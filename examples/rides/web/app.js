// The rides web UI. Plain JavaScript, no build step. The user's key lives
// in this browser and signs every action (EIP-712) and every transaction;
// instances only relay them. The page knows every instance (/api/mirrors)
// and moves to another when the one it uses stops answering.
'use strict';
const E = window.ethers;
const ZERO = '0x' + '0'.repeat(64);
const TOKEN_ABI = ['function approve(address,uint256) returns (bool)', 'function balanceOf(address) view returns (uint256)'];
const ESCROW_ABI = [
  'function open(address payee, uint256 amount, uint16 feeBps, address fund, uint64 deadline, address[] arbiters, uint8 panelSize, bytes32 salt) returns (bytes32)',
  'function release(bytes32 id)', 'function refund(bytes32 id)', 'function dispute(bytes32 id)',
  'event Opened(bytes32 indexed id, address indexed payer, address indexed payee, uint256 amount, address fund, uint16 feeBps, uint64 deadline, address[] arbiters, uint8 panelSize)',
];
const S = {
  base: location.origin, mirrors: [], info: null, wallet: null, rides: new Map(), es: null,
  tab: 'passenger', pick: [], myRide: null, myJob: null, online: false, reps: new Map(), busy: false, lastTS: 0,
};
const $ = (id) => document.getElementById(id);
const short = (a) => a ? a.slice(0, 6) + '…' + a.slice(-4) : '';
const me = () => S.wallet.address;
const same = (a, b) => a && b && a.toLowerCase() === b.toLowerCase();

function now() { // strictly increasing signed time
  S.lastTS = Math.max(Date.now(), S.lastTS + 1);
  return S.lastTS;
}

// ---- instances and failover ----

async function fetchFrom(base, path, opts) {
  const r = await fetch(base + path, opts);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { const e = new Error(body.error || r.statusText); e.status = r.status; throw e; }
  return body;
}

async function api(path, opts) {
  try {
    return await fetchFrom(S.base, path, opts);
  } catch (e) {
    if (e.status) throw e; // the instance answered: no failover
    await failover();
    return fetchFrom(S.base, path, opts);
  }
}

async function failover() {
  const tried = S.base;
  for (const m of S.mirrors) {
    if (m.url === tried) continue;
    try {
      await fetchFrom(m.url, '/api/info');
      S.base = m.url;
      status();
      connectEvents();
      return;
    } catch (_) { /* next */ }
  }
  throw new Error('no instance answers');
}

async function loadMirrors() {
  try {
    const ms = await api('/api/mirrors');
    if (ms.length) {
      S.mirrors = ms;
      localStorage.setItem('rides.mirrors', JSON.stringify(ms));
    }
  } catch (_) { /* keep the known ones */ }
  renderMirrors();
}

function connectEvents() {
  if (S.es) S.es.close();
  // A driver's page needs only open requests and its own rides.
  S.filtered = S.tab === 'driver';
  const es = new EventSource(S.base + '/api/events' + (S.filtered ? '?open=1&user=' + me() : ''));
  S.es = es;
  es.onopen = () => { setConn(true); refresh(); };
  es.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === 'ride') { S.rides.set(m.ride.id, m.ride); render(); } else if (m.type === 'reload') refresh();
  };
  es.onerror = () => {
    if (S.es !== es) return;
    setConn(false);
    es.close();
    setTimeout(async () => {
      if (S.es !== es) return;
      try { await fetchFrom(S.base, '/api/info'); } catch (_) { try { await failover(); return; } catch (_) { /* retry below */ } }
      connectEvents();
    }, 700);
  };
}

function setConn(ok) {
  const c = $('conn');
  c.textContent = ok ? 'live' : 'reconnecting';
  c.className = 'badge ' + (ok ? 'ok' : 'bad');
}

function status() { $('serving').textContent = S.base.replace('http://', ''); }

async function refresh() {
  try {
    const list = await api('/api/rides?limit=1000');
    S.rides = new Map(list.map((r) => [r.id, r]));
    render();
  } catch (e) { /* the stream's error handler moves on */ }
}

// ---- signing ----

function domain() {
  const d = S.info.domain;
  return { name: d.name, version: d.version, chainId: d.chainId, salt: d.salt };
}

async function act(kind, ride, parent, data, ts) {
  const a = { kind, ride, user: me(), ts: ts || now(), parent: parent || ZERO, data: data || '' };
  const sig = await S.wallet.signTypedData(domain(), { Action: S.info.types.Action }, a);
  const st = await api('/api/actions', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ ...a, sig }) });
  S.rides.set(st.id, st);
  render();
  return st;
}

function chainSigner() {
  const provider = new E.JsonRpcProvider(S.base + '/rpc', S.info.chainId, { staticNetwork: true, batchMaxCount: 1, pollingInterval: 250, cacheTimeout: -1 });
  return S.wallet.connect(provider);
}

async function balance() {
  if (!S.info.terms.token || /^0x0+$/.test(S.info.terms.token)) return;
  try {
    const token = new E.Contract(S.info.terms.token, TOKEN_ABI, chainSigner());
    $('balance').textContent = (await token.balanceOf(me())).toString();
  } catch (_) { /* shown next time */ }
}

// ---- the map ----

function drawCity(svg) {
  const ns = 'http://www.w3.org/2000/svg';
  const el = (t, attrs) => { const e = document.createElementNS(ns, t); for (const k in attrs) e.setAttribute(k, attrs[k]); svg.appendChild(e); return e; };
  el('path', { d: 'M0 690 C 250 620, 420 800, 640 700 S 900 620, 1000 660 L1000 760 C 900 720, 760 790, 640 800 S 250 720, 0 790 Z', fill: '#a9cbe8' });
  el('rect', { x: 120, y: 120, width: 200, height: 160, rx: 20, fill: '#b9dca4' });
  el('rect', { x: 640, y: 300, width: 170, height: 130, rx: 20, fill: '#b9dca4' });
  for (let i = 100; i < 1000; i += 100) {
    el('line', { x1: i, y1: 0, x2: i, y2: 1000, stroke: '#fff', 'stroke-width': i % 300 === 0 ? 18 : 8 });
    el('line', { x1: 0, y1: i, x2: 1000, y2: i, stroke: '#fff', 'stroke-width': i % 300 === 0 ? 18 : 8 });
  }
  const label = (x, y, t) => { const e = el('text', { x, y, 'font-size': 30, fill: '#4a5568', 'text-anchor': 'middle' }); e.textContent = t; };
  label(220, 210, 'Park'); label(725, 375, 'Campus'); label(500, 60, 'North'); label(860, 950, 'Airport'); label(150, 950, 'Harbour'); label(480, 480, 'Centre');
  const marks = el('g', { id: svg.id + '-marks' });
  return marks;
}

function drawRoute(svg, from, to, car) {
  const g = svg.querySelector('#' + svg.id + '-marks');
  g.innerHTML = '';
  const ns = 'http://www.w3.org/2000/svg';
  const add = (t, attrs, text) => { const e = document.createElementNS(ns, t); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text) e.textContent = text; g.appendChild(e); };
  if (from && to) add('path', { d: `M${from.x} ${from.y} L${to.x} ${from.y} L${to.x} ${to.y}`, stroke: '#2563eb', 'stroke-width': 10, fill: 'none', 'stroke-dasharray': '24 12' });
  if (from) { add('circle', { cx: from.x, cy: from.y, r: 22, fill: '#1e8449' }); add('text', { x: from.x, y: from.y - 30, 'font-size': 28, 'text-anchor': 'middle' }, 'pickup'); }
  if (to) { add('circle', { cx: to.x, cy: to.y, r: 22, fill: '#c0392b' }); add('text', { x: to.x, y: to.y - 30, 'font-size': 28, 'text-anchor': 'middle' }, 'drop-off'); }
  if (car) add('text', { x: car.x, y: car.y + 12, 'font-size': 48, 'text-anchor': 'middle' }, '🚕');
}

function fareOf(a, b) { return 50 + Math.round((Math.abs(a.x - b.x) + Math.abs(a.y - b.y)) / 4); }

function mapClick(ev) {
  if (S.myRide && !terminal(S.rides.get(S.myRide))) return;
  const svg = $('map');
  const pt = svg.createSVGPoint();
  pt.x = ev.clientX; pt.y = ev.clientY;
  const p = pt.matrixTransform(svg.getScreenCTM().inverse());
  const q = { x: Math.max(0, Math.min(1000, Math.round(p.x))), y: Math.max(0, Math.min(1000, Math.round(p.y))) };
  S.pick = S.pick.length >= 2 ? [q] : [...S.pick, q];
  drawRoute(svg, S.pick[0], S.pick[1]);
  $('fare').textContent = S.pick.length === 2 ? fareOf(S.pick[0], S.pick[1]) : '–';
  $('request').disabled = S.pick.length !== 2;
  $('map-hint').textContent = S.pick.length === 1 ? 'Now the drop-off.' : 'Click again to start over.';
}

// ---- passenger ----

function terminal(r) { return !r || ['completed', 'cancelled', 'disputed'].includes(r.state) && (r.state !== 'completed' || r.passengerRating > 0 || !same(r.passenger, me())); }

async function requestRide(from, to) {
  const ts = now();
  const data = JSON.stringify({ from, to, fare: String(fareOf(from, to)) });
  const window = Math.floor(ts / S.info.window);
  for (let slot = 0; slot < S.info.rateLimit; slot++) {
    const id = `${me().toLowerCase()}-${window}-${slot}`;
    try {
      const st = await act('request', id, ZERO, data, ts);
      S.myRide = st.id;
      sessionStorage.setItem('rides.myRide', st.id);
      return st;
    } catch (e) {
      if (e.status !== 409) throw e;
    }
  }
  throw new Error(`at most ${S.info.rateLimit} requests a minute: wait a little`);
}

// panelFor asks governance, through the server, for the arbiters of the deal
// a fresh salt makes: the same list every replica draws if it goes to a case.
async function panelFor(r) {
  const salt = E.hexlify(E.randomBytes(32));
  const q = new URLSearchParams({ payer: r.passenger, payee: r.driver, salt });
  return { salt, ...(await api('/api/panel?' + q)) };
}

async function confirmAndPay(r) {
  const signer = chainSigner();
  const fare = BigInt(r.request.fare);
  const t = S.info.terms;
  const token = new E.Contract(t.token, TOKEN_ABI, signer);
  const escrow = new E.Contract(t.escrow, ESCROW_ABI, signer);
  msg('p', 'approving ' + fare + ' tokens for the escrow…', true);
  await (await token.approve(t.escrow, fare)).wait();
  msg('p', 'opening the escrow deal…', true);
  const deadline = Math.floor(Date.now() / 1000) + 3600;
  const p = await panelFor(r);
  const rc = await (await escrow.open(r.driver, fare, t.feeBps, t.fund, deadline, p.arbiters, p.panelSize, p.salt)).wait();
  let id = null;
  for (const l of rc.logs) { try { const ev = escrow.interface.parseLog(l); if (ev && ev.name === 'Opened') id = ev.args.id; } catch (_) { /* not ours */ } }
  if (!id) throw new Error('no Opened event');
  await act('confirm', r.id, r.acceptId, JSON.stringify({ escrow: id }));
  msg('p', 'paid into escrow', true);
  balance();
}

async function escrowCall(r, fn) {
  const escrow = new E.Contract(S.info.terms.escrow, ESCROW_ABI, chainSigner());
  await (await escrow[fn](r.escrow)).wait();
  balance();
}

async function escrowStatus(r, el) {
  if (!r.confirmed) { el.textContent = ''; return; }
  try {
    const e = await api('/api/escrow/' + r.escrow);
    el.innerHTML = `escrow <code>${short(r.escrow)}</code>: <b class="escrow-status">${e.status}</b>, ${e.amount} tokens, fee ${e.feeBps} bps`;
  } catch (err) { el.textContent = 'escrow: ' + err.message; }
}

function stars(box, onRate) {
  box.innerHTML = '';
  for (let i = 1; i <= 5; i++) {
    const b = document.createElement('button');
    b.textContent = '★'; b.title = i + ' stars'; b.dataset.stars = i;
    b.onclick = () => onRate(i);
    box.appendChild(b);
  }
}

async function rep(addr) {
  const k = addr.toLowerCase();
  if (!S.reps.has(k)) {
    S.reps.set(k, null);
    api('/api/users/' + addr).then((r) => { S.reps.set(k, r); render(); }).catch(() => S.reps.delete(k));
  }
  return S.reps.get(k);
}

function score(addr, side) {
  const r = S.reps.get(addr.toLowerCase());
  rep(addr);
  if (!r) return '';
  const s = r[side];
  return `★${(s.score / 1000).toFixed(1)} (${s.rides} rides)`;
}

function renderPassenger() {
  const r = S.myRide && S.rides.get(S.myRide);
  $('p-new').hidden = !!(r && !terminal(r));
  $('p-ride').hidden = !r;
  if (!r) return;
  $('p-id').textContent = short(r.id);
  $('p-state').textContent = r.state.replace('_', ' ');
  const hasDriver = !/^0x0+$/.test(r.driver);
  $('p-driver').innerHTML = hasDriver ? `Driver <code>${short(r.driver)}</code> ${score(r.driver, 'driver')}` +
    ({ accepted: ' is on the way.', arriving: ' has arrived.', in_progress: ': enjoy the ride.' }[r.state] || '') : 'Waiting for a driver…';
  $('p-offers').innerHTML = r.offers.map((o) => `<li class="${same(o.driver, r.driver) ? 'win' : ''}"><span>offer from <code>${short(o.driver)}</code> ${score(o.driver, 'driver')}</span>${same(o.driver, r.driver) ? '<span>chosen</span>' : ''}</li>`).join('');
  drawRoute($('map'), r.request.from, r.request.to, r.state === 'in_progress' ? r.request.from : null);
  escrowStatus(r, $('p-escrow'));
  $('p-confirm').hidden = !(r.state === 'accepted' && !r.confirmed);
  $('p-cancel').hidden = !['requested', 'accepted', 'arriving'].includes(r.state);
  $('p-release').hidden = !(r.completed && r.confirmed && r.state === 'completed');
  $('p-rate').hidden = !(r.completed && r.passengerRating === 0);
  $('p-dispute-box').hidden = !(r.confirmed && ['accepted', 'arriving', 'in_progress', 'completed'].includes(r.state));
  $('p-new-ride').hidden = !['completed', 'cancelled', 'disputed'].includes(r.state);
}

// ---- driver ----

function renderDriver() {
  const open = [...S.rides.values()].filter((r) => r.state === 'requested' && !same(r.passenger, me()) && Date.now() - r.requestedAt < 15 * 60000);
  open.sort((a, b) => b.requestedAt - a.requestedAt);
  const ul = $('requests');
  if (!S.online) ul.innerHTML = '<li class="hint">Go online to see requests.</li>';
  else if (!open.length) ul.innerHTML = '<li class="hint">No open requests right now.</li>';
  else {
    ul.innerHTML = '';
    for (const r of open.slice(0, 50)) {
      const li = document.createElement('li');
      li.dataset.ride = r.id;
      li.innerHTML = `<span>${r.request.fare} tokens · (${r.request.from.x},${r.request.from.y}) → (${r.request.to.x},${r.request.to.y}) · passenger ${score(r.passenger, 'passenger')}</span>`;
      const b = document.createElement('button');
      b.textContent = 'Accept'; b.className = 'accept';
      b.onclick = () => run('d', async () => { S.myJob = r.id; sessionStorage.setItem('rides.myJob', r.id); await act('accept', r.id, r.requestId, ''); });
      li.appendChild(b);
      ul.appendChild(li);
    }
  }
  const r = S.myJob && S.rides.get(S.myJob);
  $('d-none').hidden = !!r;
  $('d-ride').hidden = !r;
  if (!r) return;
  const won = same(r.driver, me());
  $('d-id').textContent = short(r.id);
  $('d-state').textContent = r.state.replace('_', ' ');
  const offered = r.offers.some((o) => same(o.driver, me()));
  $('d-status').innerHTML = !offered ? 'Sending your offer…' : won ? '<b class="won">You won this ride.</b> ' + (r.confirmed ? 'The fare is in escrow.' : 'Waiting for the passenger to pay into escrow.')
    : `<b class="lost">Taken by <code>${short(r.driver)}</code>.</b>`;
  drawRoute($('dmap'), r.request.from, r.request.to, won && r.state === 'in_progress' ? r.request.from : null);
  escrowStatus(r, $('d-escrow'));
  $('d-arrive').hidden = !(won && r.state === 'accepted');
  $('d-start').hidden = !(won && r.state === 'arriving');
  $('d-start').disabled = !r.confirmed;
  $('d-complete').hidden = !(won && r.state === 'in_progress');
  $('d-rate').hidden = !(won && r.completed && r.driverRating === 0);
  $('d-dispute-box').hidden = !(won && r.confirmed && ['accepted', 'arriving', 'in_progress', 'completed'].includes(r.state));
  // An honest driver's page gives the fare back when a paid ride is cancelled.
  if (won && r.state === 'cancelled' && r.confirmed && !S.refunded) {
    S.refunded = true;
    api('/api/escrow/' + r.escrow).then((e) => e.status === 'open' && escrowCall(r, 'refund')).catch(() => { S.refunded = false; });
  }
}

// ---- DApp ----

async function renderDapp() {
  const t = S.info.terms;
  $('terms').innerHTML = `<dt>AppID</dt><dd><code>${S.info.appId.slice(0, 32)}</code></dd><dt>fee</dt><dd id="fee-bps">${t.feeBps} bps</dd>` +
    `<dt>fund</dt><dd><code>${t.fund}</code></dd><dt>arbiters</dt><dd>${t.arbiters.map((a) => '<code>' + short(a) + '</code>').join(' ')}</dd>` +
    `<dt>rate limit</dt><dd>${S.info.rateLimit} requests a minute per key</dd><dt>instance</dt><dd><code>${S.info.instance}</code></dd>`;
  renderDisputes();
  try {
    const ps = await api('/api/gov/proposals');
    const ul = $('proposals');
    ul.innerHTML = ps.length ? '' : '<li class="hint">No proposals yet.</li>';
    for (const p of ps) {
      const li = document.createElement('li');
      const sc = (p.Scores || []).join(' / ');
      li.innerHTML = `<span>${escapeHTML(p.Title)} · for/against/abstain ${sc} · ends ${new Date(p.End).toLocaleTimeString()}${p.Final ? ' · final' : ''}${p.Passed ? ' · passed' : ''}</span>`;
      for (const [label, choice] of [['for', 0], ['against', 1]]) {
        const b = document.createElement('button');
        b.className = 'small'; b.textContent = label;
        b.onclick = () => run('g', () => vote(p.Proposal, choice));
        li.appendChild(b);
      }
      ul.appendChild(li);
    }
  } catch (_) { /* next time */ }
}

// renderDisputes lists the disputed rides with their cases: panel,
// ballots, ruling, settlement. An arbiter on a case's panel who has not
// ruled gets buttons to rule: the payee (the driver) gets 0, 50 or 100%.
async function renderDisputes() {
  const ds = [...S.rides.values()].filter((r) => r.state === 'disputed');
  const ul = $('disputes');
  if (!ds.length) { ul.innerHTML = '<li class="hint">None.</li>'; return; }
  const cases = await Promise.all(ds.map((r) => api('/api/gov/cases/' + r.escrow).catch(() => null)));
  ul.innerHTML = '';
  ds.forEach((r, i) => {
    const c = cases[i];
    const li = document.createElement('li');
    li.dataset.deal = r.escrow;
    let state = 'no case yet';
    if (c) {
      const counted = c.ballots.filter((b) => b.counted);
      state = `panel ${c.panel.map((a) => '<code>' + short(a) + '</code>').join(' ')} · ${counted.length}/${c.panel.length} ruled`;
      if (c.decided) state += ` · decided: ${c.payeeBps / 100}% to the driver`;
      if (c.settlement) state += ` · <span class="settled">settled${c.settlement.onChain ? ' on-chain' : ''}</span> <code>${short(c.settlement.tx)}</code>`;
    }
    li.innerHTML = `<span>ride <code>${short(r.id)}</code>: ${escapeHTML(r.reason)} (by <code>${short(r.disputedBy)}</code>) · <span class="case-state">${state}</span></span>`;
    const mine = c && !c.settlement && c.panel.some((a) => same(a, me())) && !c.ballots.some((b) => b.counted && same(b.arbiter, me()));
    if (mine) {
      for (const [label, bps] of [['refund passenger', 0], ['split', 5000], ['pay driver', 10000]]) {
        const b = document.createElement('button');
        b.className = 'small rule'; b.textContent = label; b.dataset.bps = bps;
        b.onclick = () => run('g', () => rule(r.escrow, bps));
        li.appendChild(b);
      }
    }
    ul.appendChild(li);
  });
}

// rule is an arbiter's ruling from the browser: the user's key signs the
// escrow contract's ruling, then the governance ballot carrying it; once a
// majority of the panel agrees, an instance settles the deal on-chain.
async function rule(deal, bps) {
  const td = await api(`/api/gov/ruling?deal=${deal}&payeeBps=${bps}`);
  const types = { ...td.types };
  delete types.EIP712Domain;
  const ruling = await S.wallet.signTypedData(td.domain, types, td.message);
  await submitSigned(`/api/gov/case-ballot?deal=${deal}&arbiter=${me()}&payeeBps=${bps}&ruling=${ruling}`);
  msg('g', 'ruling submitted', true);
}

// submitSigned signs the typed data the instance's governance gives for
// path with the user's own key and submits it.
async function submitSigned(path) {
  const td = await api(path);
  const types = { ...td.types };
  delete types.EIP712Domain;
  const signature = await S.wallet.signTypedData(td.domain, types, td.message);
  return api('/api/gov/submit', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ typedData: td, signature }) });
}

// disputeRide freezes the escrow deal on-chain, records the dispute in the
// ride, and puts the deal before the arbiters: a governance case the user
// signs, with the reason as evidence.
async function disputeRide(who, r, reason) {
  await escrowCall(r, 'dispute');
  await act('dispute', r.id, r.acceptId, JSON.stringify({ reason }));
  const q = `deal=${r.escrow}&party=${me()}`;
  await submitSigned(`/api/gov/case?${q}`);
  await submitSigned(`/api/gov/evidence?${q}&text=${encodeURIComponent(reason)}`);
  msg(who, 'disputed: the case is before the arbiters', true);
}

async function vote(id, choice) {
  const td = await api(`/api/gov/ballot?proposal=${id}&voter=${me()}&choice=${choice}`);
  const types = { ...td.types };
  delete types.EIP712Domain;
  const signature = await S.wallet.signTypedData(td.domain, types, td.message);
  await api('/api/gov/submit', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ typedData: td, signature }) });
  msg('g', 'ballot submitted (it counts if you are a member)', true);
}

// renderMirrors lists the instances with the SDK gateway's badges, which
// show what the other instances attested of each (online, verified build,
// availability), never what it says of itself.
function renderMirrors() {
  const badges = (m) => ['online', 'verified', 'availability'].map((k) => `<img class="gw-badge" alt="${k}" src="${m.url}/dpaas/badge/self/${k}.svg">`).join('');
  $('mirrors').innerHTML = S.mirrors.map((m) => `<li><span><code>${m.url.replace('http://', '')}</code> instance <code>${short(m.account)}</code><br>${badges(m)}</span><i class="badge ${m.url === S.base ? 'ok' : ''}">${m.url === S.base ? 'serving you' : 'mirror'}</i></li>`).join('');
}

function escapeHTML(s) { return String(s || '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c])); }

// ---- glue ----

function msg(who, text, ok) { const m = $(who + '-msg'); m.textContent = text || ''; m.className = 'msg' + (ok ? ' ok' : ''); }

async function run(who, f) {
  if (S.busy) return;
  S.busy = true;
  msg(who, '');
  try { await f(); } catch (e) { msg(who, e.shortMessage || e.message); } finally { S.busy = false; render(); }
}

let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => { // not requestAnimationFrame: a page in the background must keep up too
    renderQueued = false;
    if (S.tab === 'passenger') renderPassenger();
    if (S.tab === 'driver') renderDriver();
    if (S.tab === 'dapp') renderDapp();
  }, 15);
}

function showTab(tab) {
  S.tab = tab;
  if (S.es && S.filtered !== (tab === 'driver')) connectEvents();
  for (const v of ['passenger', 'driver', 'dapp']) { $(v).hidden = v !== tab; $('tab-' + v).classList.toggle('on', v === tab); }
  render();
}

async function main() {
  const h = new URLSearchParams(location.hash.slice(1));
  let key = h.get('key') || sessionStorage.getItem('rides.key') || localStorage.getItem('rides.key');
  const fresh = !key;
  if (fresh) key = E.Wallet.createRandom().privateKey;
  (h.get('key') ? sessionStorage : localStorage).setItem('rides.key', key);
  if (h.get('key')) history.replaceState(null, '', location.pathname + '#role=' + (h.get('role') || 'passenger'));
  S.wallet = new E.Wallet(key);
  S.myRide = sessionStorage.getItem('rides.myRide');
  S.myJob = sessionStorage.getItem('rides.myJob');
  S.mirrors = JSON.parse(localStorage.getItem('rides.mirrors') || '[]');
  $('me').textContent = short(me());
  $('me').title = me();
  status();
  S.info = await api('/api/info');
  $('faucet').hidden = !S.info.faucet;
  $('faucet').onclick = () => run('p', async () => { await api('/api/faucet', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ address: me() }) }); balance(); });
  drawCity($('map'));
  drawCity($('dmap'));
  $('map').addEventListener('click', mapClick);
  $('request').onclick = () => run('p', () => requestRide(S.pick[0], S.pick[1]));
  const cur = () => S.rides.get(S.myRide);
  const job = () => S.rides.get(S.myJob);
  $('p-confirm').onclick = () => run('p', () => confirmAndPay(cur()));
  $('p-cancel').onclick = () => run('p', () => act('cancel', cur().id, cur().requestId));
  $('p-release').onclick = () => run('p', async () => { await escrowCall(cur(), 'release'); msg('p', 'driver paid', true); });
  $('p-dispute').onclick = () => run('p', () => disputeRide('p', cur(), $('p-reason').value || 'no reason given'));
  $('p-new-ride').onclick = () => { S.myRide = null; S.pick = []; sessionStorage.removeItem('rides.myRide'); drawRoute($('map')); $('request').disabled = true; render(); };
  stars(document.querySelector('.stars[data-who=p]'), (n) => run('p', () => act('rate', cur().id, cur().acceptId, JSON.stringify({ stars: n }))));
  stars(document.querySelector('.stars[data-who=d]'), (n) => run('d', () => act('rate', job().id, job().acceptId, JSON.stringify({ stars: n }))));
  for (const k of ['arrive', 'start', 'complete']) $('d-' + k).onclick = () => run('d', () => act(k, job().id, job().acceptId, ''));
  $('d-dispute').onclick = () => run('d', () => disputeRide('d', job(), $('d-reason').value || 'no reason given'));
  $('online').onchange = (e) => { S.online = e.target.checked; render(); };
  $('propose').onclick = () => run('g', async () => { await api('/api/propose-fee', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ feeBps: Number($('new-fee').value), minutes: 2 }) }); msg('g', 'proposed', true); });
  for (const b of document.querySelectorAll('nav button')) b.onclick = () => showTab(b.dataset.tab);
  showTab(['passenger', 'driver', 'dapp'].includes(h.get('role')) ? h.get('role') : 'passenger');
  if (h.get('role') === 'driver') { $('online').checked = true; S.online = true; }
  await loadMirrors();
  connectEvents();
  await refresh();
  balance();
  setInterval(() => { loadMirrors(); balance(); if (S.tab === 'dapp') render(); S.info && api('/api/info').then((i) => { S.info = i; }).catch(() => {}); }, 3000);
  document.body.dataset.ready = '1';
}

main().catch((e) => { document.body.dataset.error = e.message; msg('p', e.message); });
