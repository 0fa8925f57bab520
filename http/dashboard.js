'use strict';
(function () {
  var REFRESH_MS = 2000, TIMEOUT_MS = 10000, KEY = 'credo.dashboard.adminToken';
  var $ = function (id) { return document.getElementById(id); };
  var token = null, timer = null, authError = null;

  // The token arrives in the fragment (never sent to the server), leaves the address bar at once
  // and lives on in this tab's sessionStorage only.
  function takeTokenFromFragment() {
    var hash = location.hash.replace(/^#/, ''), found = null;
    hash.split('&').forEach(function (part) {
      if (part.indexOf('token=') === 0) {
        try { found = decodeURIComponent(part.slice(6)); } catch (e) { found = part.slice(6); }
      }
    });
    if (hash) history.replaceState(null, '', location.pathname + location.search);
    return found;
  }
  function store(t) {
    token = t || null;
    try { if (token) sessionStorage.setItem(KEY, token); else sessionStorage.removeItem(KEY); }
    catch (e) { /* storage disabled: the token lives in this page only */ }
  }
  function stored() { try { return sessionStorage.getItem(KEY); } catch (e) { return null; } }

  function text(id, value) { $(id).textContent = value === null || value === undefined ? '\u2014' : String(value); }
  function showError(msg) { var e = $('error'); e.textContent = msg; e.hidden = false; }
  function clearError() { var e = $('error'); e.textContent = ''; e.hidden = true; }
  function cell(row, value, cls) {
    var td = document.createElement('td');
    td.textContent = value === null || value === undefined || value === '' ? '\u2014' : String(value);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }
  function emptyRow(tbody, cols, msg) {
    var tr = document.createElement('tr'), td = cell(tr, msg, 'empty');
    td.colSpan = cols; tbody.replaceChildren(tr);
  }
  function ago(iso) {
    var t = Date.parse(iso);
    if (isNaN(t)) return iso;
    var s = Math.max(0, Math.round((Date.now() - t) / 1000));
    return iso + ' (' + (s < 1 ? 'now' : s + ' s ago') + ')';
  }

  function HttpError(status, code) { this.status = status; this.code = code; }
  function get(path, auth) {
    var headers = { 'Accept': auth ? 'application/json' : 'text/plain' };
    if (auth) headers['Authorization'] = 'Bearer ' + token;
    var ctl = new AbortController(), t = setTimeout(function () { ctl.abort(); }, TIMEOUT_MS);
    return fetch(path, { headers: headers, cache: 'no-store', credentials: 'omit',
                         redirect: 'error', referrerPolicy: 'no-referrer', signal: ctl.signal })
      .then(function (r) {
        clearTimeout(t);
        if (r.ok) return auth ? r.json() : r.text();
        return r.json().catch(function () { return {}; }).then(function (body) {
          throw new HttpError(r.status, body && typeof body.error === 'string' ? body.error : '');
        });
      }, function (e) { clearTimeout(t); throw e; });
  }
  function describe(path, e) {
    if (e instanceof HttpError) {
      if (e.status === 401 || e.status === 403) return 'admin token rejected';
      return 'GET ' + path + ' failed: HTTP ' + e.status + (e.code ? ' ' + e.code : '');
    }
    if (e && e.name === 'AbortError') return 'GET ' + path + ' timed out';
    return 'GET ' + path + ' failed: no usable answer from the node' + (e && e.name ? ' (' + e.name + ')' : '');
  }

  function renderCluster(c) {
    text('node', c.node);
    text('ring-version', c.ring_version);
    var tbody = $('members').tBodies[0], rows = [];
    (Array.isArray(c.members) ? c.members : []).forEach(function (m) {
      var tr = document.createElement('tr');
      tr.className = 'member';
      tr.setAttribute('data-node', String(m.node));
      cell(tr, m.node); cell(tr, m.address);
      cell(tr, m.status, 'status-' + String(m.status).toLowerCase().replace(/[^a-z0-9_-]/g, ''));
      cell(tr, m.last_seen ? ago(m.last_seen) : null);
      rows.push(tr);
    });
    if (rows.length) tbody.replaceChildren.apply(tbody, rows); else emptyRow(tbody, 4, 'no members');
  }
  function renderActors(a) {
    var tbody = $('actors').tBodies[0], rows = [];
    (Array.isArray(a.supervisors) ? a.supervisors : []).forEach(function (s) {
      var tr = document.createElement('tr');
      tr.className = 'actor';
      tr.setAttribute('data-kind', String(s.kind));
      cell(tr, s.kind);
      ['live', 'restarts', 'failures', 'max_mailbox'].forEach(function (k) { cell(tr, s[k], 'num'); });
      cell(tr, s.last_failure);
      rows.push(tr);
    });
    if (rows.length) tbody.replaceChildren.apply(tbody, rows); else emptyRow(tbody, 6, 'no supervisors');
  }
  // The value of an unlabelled sample in a Prometheus text exposition, or null.
  function metric(body, name) {
    var lines = body.split('\n');
    for (var i = 0; i < lines.length; i++) {
      var parts = lines[i].trim().split(/\s+/);
      if (parts[0] === name && parts.length >= 2) {
        var v = Number(parts[1]);
        return isFinite(v) ? v : null;
      }
    }
    return null;
  }
  function renderMetrics(body) {
    var depth = metric(body, 'credo_audit_outbox_depth');
    text('outbox-depth', depth);
  }
  function clearAdminViews() {
    text('node', null); text('ring-version', null);
    emptyRow($('members').tBodies[0], 4, 'no data');
    emptyRow($('actors').tBodies[0], 6, 'no data');
  }

  function askForToken() {
    clearAdminViews();
    $('login').hidden = false;
  }

  function refresh() {
    clearTimeout(timer);
    var errors = [], rejected = false;
    var fail = function (path) {
      return function (e) {
        if (e instanceof HttpError && (e.status === 401 || e.status === 403)) rejected = true;
        errors.push(describe(path, e));
      };
    };
    var jobs = [get('/metrics', false).then(renderMetrics).catch(fail('/metrics'))];
    if (token) {
      jobs.push(get('/admin/cluster', true).then(renderCluster).catch(fail('/admin/cluster')));
      jobs.push(get('/admin/actors', true).then(renderActors).catch(fail('/admin/actors')));
    }
    Promise.all(jobs).then(function () {
      if (rejected) {
        store(null);
        authError = 'admin token rejected';  // stays up until another token is entered
        askForToken();
      }
      var msgs = (authError ? [authError] : []).concat(errors);
      msgs = msgs.filter(function (m, i) { return msgs.indexOf(m) === i; });
      if (msgs.length) showError(msgs.join('; '));
      else clearError();
      if (!errors.length) text('updated', new Date().toLocaleTimeString());
      if (!token && $('login').hidden) askForToken();
      timer = setTimeout(refresh, REFRESH_MS);
    });
  }

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var input = $('token-input'), t = input.value.trim();
    input.value = '';
    if (!t) return;
    store(t);
    authError = null;
    $('login').hidden = true;
    clearError();
    refresh();
  });

  store(takeTokenFromFragment() || stored());
  if (!token) askForToken();
  refresh();
})();
