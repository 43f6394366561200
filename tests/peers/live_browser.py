#!/usr/bin/env python3
"""Drives a running headless Chromium over the DevTools protocol against the live page.

Used by tests/live_page.rs, which starts the quickstart and Chromium (--port is its remote
debugging port) and asserts on the JSON report this prints on stdout. The script loads
--url at 1280x800, waits until every expected function and route shows a rate, reads the
tables, opens the hostile-string traces (--xss-trace) and one failed trace (--failed-root)
from the Failed list, reads a route's count twice at least one sample interval apart,
measures horizontal overflow at 420 px and takes screenshots into --out.

Everything it saw is in the report: exceptions, console errors, Log.entryAdded errors
(network ones apart: an HTTP error status is not a page error) and dialogs, which it
dismisses. It judges nothing itself: exit status 0 with a report, 2 on a driver error (the
report then has `driver_error` and what was seen until then). Every CDP call has 15 s, every
wait on the page its own bound.

Needs `websockets>=13,<18` (websockets.sync.client).
"""
import argparse, base64, itertools, json, os, sys, time, urllib.request

from websockets.sync.client import connect

CALL_TIMEOUT = 15.0


class Cdp:
    """One browser websocket; commands go to one page in flattened-session mode."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)
        self.session = None
        self.width = 0
        self.events = {'exceptions': [], 'console_errors': [], 'log_errors': [], 'network_errors': [], 'dialogs': []}

    def _event(self, m):
        method, p = m.get('method'), m.get('params', {})
        if method == 'Runtime.exceptionThrown':
            d = p.get('exceptionDetails', {})
            self.events['exceptions'].append(d.get('exception', {}).get('description') or d.get('text'))
        elif method == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'):
            self.events['console_errors'].append(' '.join(str(a.get('value', a.get('description'))) for a in p.get('args', [])))
        elif method == 'Log.entryAdded' and p.get('entry', {}).get('level') == 'error':
            e = p['entry']
            kind = 'network_errors' if e.get('source') == 'network' else 'log_errors'
            self.events[kind].append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip())
        elif method == 'Page.javascriptDialogOpening':
            self.events['dialogs'].append(p.get('message'))
            # Dismissed without waiting for the answer (the page is blocked until then).
            self.ws.send(json.dumps({'id': next(self.ids), 'method': 'Page.handleJavaScriptDialog',
                                     'params': {'accept': False}, 'sessionId': m.get('sessionId')}))

    def call(self, method, params=None, session=True, timeout=CALL_TIMEOUT):
        i = next(self.ids)
        msg = {'id': i, 'method': method, 'params': params or {}}
        if session and self.session:
            msg['sessionId'] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(method)
            m = json.loads(self.ws.recv(timeout=left))
            if m.get('id') == i:
                if 'error' in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get('result', {})
            if 'method' in m:
                self._event(m)

    def pump(self, seconds):
        """Lets events arrive for a while."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                m = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                return
            if 'method' in m:
                self._event(m)

    def eval(self, expr):
        r = self.call('Runtime.evaluate', {'expression': expr, 'returnByValue': True, 'awaitPromise': True})
        if 'exceptionDetails' in r:
            raise RuntimeError(f"evaluate failed: {r['exceptionDetails'].get('text')} in {expr[:80]}")
        return r.get('result', {}).get('value')

    def wait(self, expr, timeout=40.0, what=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.eval(expr)
            if v:
                return v
            self.pump(0.25)
        raise TimeoutError(f'{timeout:.0f} s waiting for {what or expr}')

    def viewport(self, w, h):
        self.width = w
        self.call('Emulation.setDeviceMetricsOverride', {'width': w, 'height': h, 'deviceScaleFactor': 1, 'mobile': False})
        self.pump(0.3)

    def screenshot(self, path, full=False):
        p = {'format': 'png'}
        if full:  # the whole page, not just the viewport
            size = self.call('Page.getLayoutMetrics')['cssContentSize']
            p.update(captureBeyondViewport=True, clip={'x': 0, 'y': 0, 'width': self.width, 'height': size['height'], 'scale': 1})
        data = self.call('Page.captureScreenshot', p)['data']
        with open(path, 'wb') as f:
            f.write(base64.b64decode(data))
        return path


# In-page expressions: they only read the DOM (through the page's test hooks).
ROWS_JS = """[...document.querySelectorAll('tr[data-row="function"],tr[data-row="route"]')].map(r => ({
  kind: r.dataset.row, key: r.dataset.key, count: r.querySelector('.count').textContent,
  rate: r.querySelector('.rate').textContent, err: r.querySelector('.err').textContent,
  p50: r.querySelector('.p50').textContent, p90: r.querySelector('.p90').textContent,
  p99: r.querySelector('.p99').textContent}))"""
SPANS_JS = """({trace: document.getElementById('waterfall').getAttribute('data-trace-id'),
  spans: [...document.querySelectorAll('#waterfall [data-span-id]')].map(r => ({id: r.getAttribute('data-span-id'),
    parent: r.getAttribute('data-parent-id'), name: r.querySelector('.name').textContent})),
  logs: [...document.querySelectorAll('#logs [data-log]')].map(l => ({span: l.getAttribute('data-span-id'),
    body: l.querySelector('.body').textContent}))})"""
OVERFLOW_JS = 'document.documentElement.scrollWidth - window.innerWidth'
# Whether some element's text is exactly the payload, and what an injection would have added.
INERT_JS = """(p => ({text_found: [...document.querySelectorAll('body *')].some(e => e.textContent === p),
  scripts: document.scripts.length, injected_img: document.querySelectorAll('img[src="x"]').length,
  on_attrs: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length}))"""


def rates_ready_js(functions, routes):
    """Every expected function and route (any method) has a row with a rate > 0. Other rows
    (the unmatched paths: a twentieth of the requests) may be at 0 for a window."""
    return f"""(() => {{
      const rate = r => parseFloat(r.querySelector('.rate').textContent.replace(/,/g, ''));
      const rows = [...document.querySelectorAll('tr[data-row="function"],tr[data-row="route"]')];
      return {json.dumps(functions)}.every(f => rows.some(r => r.dataset.row === 'function' && r.dataset.key === f && rate(r) > 0))
        && {json.dumps(routes)}.every(t => rows.some(r => r.dataset.row === 'route' && r.dataset.key.endsWith(' ' + t) && rate(r) > 0));
    }})()"""


def listed_js(tid):
    return f"""!!document.querySelector('tr[data-list="failed"][data-trace-id="{tid}"]')"""


def failed_with_root_js(root, skip):
    return f"""(() => {{ const r = [...document.querySelectorAll('tr[data-trace-id][data-list="failed"]')]
      .find(r => r.querySelector('a').textContent === {json.dumps(root)}
        && !{json.dumps(skip)}.includes(r.getAttribute('data-trace-id')));
      return r ? r.getAttribute('data-trace-id') : null; }})()"""


def show_overview(cdp):
    cdp.eval("location.hash = ''")
    cdp.wait("!document.getElementById('overview').hidden && !!document.querySelector('tr[data-list]')",
             timeout=10, what='the overview')


def open_trace(cdp, tid):
    """Opens a trace as a click on its row in the Failed list would, and reads the waterfall."""
    cdp.eval(f"""document.querySelector('tr[data-list="failed"][data-trace-id="{tid}"] a').click()""")
    cdp.wait(f"document.getElementById('waterfall').getAttribute('data-trace-id') === '{tid}'"
             " || !document.getElementById('t-msg').hidden", timeout=15, what=f'trace {tid}')
    msg = cdp.eval("document.getElementById('t-msg').hidden ? null : document.getElementById('t-msg').textContent")
    if msg:
        raise RuntimeError(f'trace {tid} did not open: {msg}')
    return cdp.eval(SPANS_JS)


def run(cdp, a, rep):
    t = cdp.call('Target.createTarget', {'url': 'about:blank'}, session=False)
    cdp.session = cdp.call('Target.attachToTarget', {'targetId': t['targetId'], 'flatten': True}, session=False)['sessionId']
    for d in ('Page', 'Runtime', 'Log'):
        cdp.call(f'{d}.enable')
    cdp.viewport(1280, 800)
    start = time.monotonic()
    cdp.call('Page.navigate', {'url': a.url})
    cdp.wait("document.body && document.body.dataset.ready === '1'", timeout=20, what='the first overview render')
    rep['ready_ms'] = round((time.monotonic() - start) * 1000)
    cdp.wait(rates_ready_js(a.function, a.route), timeout=40, what='every function and route with a rate > 0')
    rep['rates_ms'] = round((time.monotonic() - start) * 1000)
    rep['rows'] = cdp.eval(ROWS_JS)
    rep['interval_ms'] = cdp.eval("fetch('/live/api/overview',{cache:'no-store'}).then(r => r.json()).then(o => o.interval_ms)")

    # The hostile strings first (the Failed list turns over): each trace as its row opens
    # it, check_stock's details expanded so its `item` attribute is on the page.
    rep['xss'] = []
    for tid in a.xss_trace:
        show_overview(cdp)
        cdp.wait(listed_js(tid), timeout=20, what=f'trace {tid} in the Failed list')
        trace = open_trace(cdp, tid)
        clicked = cdp.eval("""(() => { const r = [...document.querySelectorAll('#waterfall .sr')]
          .find(r => r.querySelector('.name').textContent === 'check_stock');
          if (r) r.click(); return !!r; })()""")
        cdp.pump(0.3)
        rep['xss'].append({'trace': tid, 'spans': len(trace['spans']), 'expanded': clicked,
                           'inert': cdp.eval(f'{INERT_JS}({json.dumps(a.payload[len(rep["xss"])])})')})

    # A failed trace of the given root, opened from the list once its logs had time to
    # follow it (they are exported on their own schedule and join the kept trace).
    show_overview(cdp)
    tid = cdp.wait(failed_with_root_js(a.failed_root, []), timeout=30, what=f'a failed {a.failed_root} trace')
    cdp.pump(2.0)
    cdp.wait(listed_js(tid), timeout=1, what=f'trace {tid} still in the Failed list')
    rep['failed_trace'] = open_trace(cdp, tid)
    cdp.eval("(document.querySelector('#waterfall .sr.err') || document.querySelector('#waterfall .sr')).click()")
    cdp.pump(0.3)
    rep['screenshots'] = [cdp.screenshot(os.path.join(a.out, 'trace-1280x800.png'))]
    cdp.viewport(420, 800)
    rep['overflow_px'] = {'trace': cdp.eval(OVERFLOW_JS)}
    rep['screenshots'].append(cdp.screenshot(os.path.join(a.out, 'trace-420x800.png')))

    # The overview keeps updating: a route's count, read twice at least one interval apart.
    cdp.viewport(1280, 800)
    show_overview(cdp)
    sel = json.dumps(f'[data-row="route"][data-key="{a.count_key}"] .count')
    read = f'(e => e && e.textContent)(document.querySelector({sel}))'
    c1, t1 = cdp.eval(read), time.monotonic()
    cdp.pump((rep['interval_ms'] or 5000) / 1000 + 0.2)
    cdp.wait(f'(e => e && e.textContent !== {json.dumps(c1)})(document.querySelector({sel}))', timeout=15,
             what=f'the count of {a.count_key} to change')
    rep['count_reads'] = {'first': c1, 'second': cdp.eval(read), 'apart_ms': round((time.monotonic() - t1) * 1000)}

    cdp.eval('window.scrollTo(0,0)')
    cdp.pump(0.3)
    rep['screenshots'] += [cdp.screenshot(os.path.join(a.out, 'live-1280x800.png')),
                           cdp.screenshot(os.path.join(a.out, 'live-1280-full.png'), full=True)]
    cdp.viewport(420, 800)
    rep['overflow_px']['overview'] = cdp.eval(OVERFLOW_JS)
    rep['screenshots'].append(cdp.screenshot(os.path.join(a.out, 'live-420x800.png')))
    cdp.viewport(1280, 800)
    cdp.pump(0.5)  # late events


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, required=True, help='DevTools port of the running chromium')
    ap.add_argument('--url', required=True, help='the live page, http://127.0.0.1:PORT/live')
    ap.add_argument('--out', default='.', help='directory for screenshots')
    ap.add_argument('--function', action='append', default=[], help='a function row that must show a rate')
    ap.add_argument('--route', action='append', default=[], help='a route template that must show a rate')
    ap.add_argument('--failed-root', required=True, help='root name of the failed trace to open')
    ap.add_argument('--xss-trace', action='append', default=[], help='id of a failed trace carrying --payload')
    ap.add_argument('--payload', action='append', default=[], help='the hostile string of each --xss-trace')
    ap.add_argument('--count-key', default='GET /users/{id}', help='route row whose count must change')
    a = ap.parse_args()
    if len(a.payload) != len(a.xss_trace):
        ap.error('one --payload per --xss-trace')
    os.makedirs(a.out, exist_ok=True)
    with urllib.request.urlopen(f'http://127.0.0.1:{a.port}/json/version', timeout=CALL_TIMEOUT) as r:
        ws_url = json.load(r)['webSocketDebuggerUrl']
    rep = {}
    with connect(ws_url, max_size=64 * 2**20, open_timeout=CALL_TIMEOUT) as ws:
        cdp = Cdp(ws)
        try:
            run(cdp, a, rep)
        except Exception as e:  # the report holds what was seen so far
            rep['driver_error'] = f'{type(e).__name__}: {e}'
        rep.update(cdp.events)
    json.dump(rep, sys.stdout, indent=1, ensure_ascii=False)
    print()
    sys.exit(2 if 'driver_error' in rep else 0)


if __name__ == '__main__':
    main()
