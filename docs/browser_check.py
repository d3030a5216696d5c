"""Open pages of the built site in headless Chromium and fail where a reader would see it broken.

    python3 docs/browser_check.py docs/_build/html --out docs/_build/screenshots

For each page (default: the index, the tour and the API page of ``kltrain.regularized``) it saves a
screenshot and fails (exit status 1) if the page

- is blank (less than 200 characters of text in its main part) or shows a broken image;
- logs a console error or an uncaught exception, or a resource fails to load;
- requests anything outside the site (a CDN, a web font: the site must work offline);
- shows unrendered math: ``$…$``, ``\\(…\\)``, ``:math:`` in its text (code excluded), or a MathJax error;
- has no rendered formula where the page list asks for one (``PAGE:math``).

Chromium (Debian's ``chromium``) is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``), so nothing but the standard library is needed. The site is served
from 127.0.0.1 (a file:// page may not load fonts); the browser runs headless, without sandbox,
GPU, first-run, background networking, component updates or sync, on a fresh profile folder.
Exit status 2: no Chromium found (``CHROMIUM`` names the binary if it is not on PATH).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import functools
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars",
         "--mute-audio", "--remote-debugging-pipe"]
DEFAULT_PAGES = ("index.html:math", "tour.html", "generated/kltrain.regularized.html:math")
MIN_TEXT = 200

# Runs in the page once it has loaded and MathJax (if any) has typeset: what a reader sees.
INSPECT_JS = r"""
(() => {
  const main = document.querySelector("article[role=main]") || document.querySelector("main")
               || document.body;
  const skip = "PRE, CODE, SCRIPT, STYLE, TEXTAREA, KBD, MJX-CONTAINER, MJX-ASSISTIVE-MML";
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT, {
    acceptNode: n => (n.parentElement && n.parentElement.closest(skip)) ? NodeFilter.FILTER_REJECT
                                                                          : NodeFilter.FILTER_ACCEPT});
  const parts = [];
  while (walker.nextNode()) parts.push(walker.currentNode.nodeValue);
  const prose = parts.join(" ");
  const raw = [];
  for (const re of [/\$\$[^$]+\$\$/g, /\$[^$\s][^$\n]*?\$/g, /\\\([^)]*\\\)/g, /\\\[[^\]]*\\\]/g, /:math:`[^`]*`?/g])
    for (const m of prose.matchAll(re)) raw.push(m[0].slice(0, 80));
  return {
    title: document.title,
    textLength: (main.innerText || "").trim().length,
    formulas: document.querySelectorAll("mjx-container").length,
    mathErrors: [...document.querySelectorAll("mjx-merror")].map(e => e.textContent.slice(0, 80)),
    rawMath: raw.slice(0, 10),
    brokenImages: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
  };
})()
"""
MATHJAX_READY_JS = """
(window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? MathJax.startup.promise.then(() => "typeset") : Promise.resolve("no MathJax")
"""


class DevToolsPipe:
    """Chromium's DevTools protocol over ``--remote-debugging-pipe``: JSON + NUL on fds 3 (in) and 4 (out)."""

    def __init__(self, binary: str, profile: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's fd 3 must read our commands and its fd 4 write the replies. bash moves them
        # there (no preexec_fn: Python code in a forked child of a threaded process can deadlock);
        # the ends sit above 9 so that the moves cannot overwrite each other (dash takes one digit).
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w)]
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        wire = f'exec 3<&{ends[0]} 4>&{ends[1]} {ends[0]}<&- {ends[1]}>&-; exec "$@"'
        self.proc = subprocess.Popen(["bash", "-c", wire, "bash", binary, *FLAGS, f"--user-data-dir={profile}",
                                      "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=tuple(ends))
        for fd in ends:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError(f"Chromium closed the pipe (exit status {self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> dict:
        """The first event ``method`` (one already received counts), within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def close(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class PageResult:
    """What the browser saw on one page, and every reason it fails."""

    page: str
    screenshot: Path | None = None
    facts: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        f = self.facts
        summary = (f"{f.get('textLength', 0)} characters, {f.get('formulas', 0)} formulas"
                   + (f", screenshot {self.screenshot}" if self.screenshot else ""))
        if not self.problems:
            return f"ok    {self.page}: {summary}"
        return f"FAIL  {self.page}: {summary}\n" + "\n".join(f"      - {p}" for p in self.problems)


def console_problems(events: list[dict], origin: str) -> list[str]:
    """Console errors, uncaught exceptions, failed loads and requests leaving ``origin``."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            problems.append(f"console error: {args[:200]}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            problems.append(f"uncaught exception: {text[:200]}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            problems.append(f"console error ({entry.get('source')}): {entry.get('text', '')[:160]} {entry.get('url', '')}")
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if not url.startswith((origin, "data:", "blob:", "about:")):
                problems.append(f"request outside the site (must work offline): {url[:160]}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(f"failed to load: {params.get('errorText')} ({params.get('type')})")
    return problems


def page_problems(facts: dict, needs_math: bool) -> list[str]:
    """Blank page, broken images, unrendered or failed math, missing formulas."""
    problems = []
    if facts["textLength"] < MIN_TEXT:
        problems.append(f"blank: {facts['textLength']} characters of text (at least {MIN_TEXT} expected)")
    problems += [f"broken image: {src}" for src in facts["brokenImages"]]
    problems += [f"unrendered math: {text!r}" for text in facts["rawMath"]]
    problems += [f"MathJax error: {text!r}" for text in facts["mathErrors"]]
    if needs_math and facts["formulas"] == 0:
        problems.append("no rendered formula (MathJax did not typeset this page's math)")
    return problems


def check_page(browser: DevToolsPipe, origin: str, page: str, out: Path, needs_math: bool) -> PageResult:
    """Load one page in a fresh tab, let MathJax finish, then collect facts, problems and a screenshot."""
    result = PageResult(page)
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        browser.events.clear()
        nav = browser.call("Page.navigate", {"url": f"{origin}/{page}"}, session=session)
        if nav.get("errorText"):
            result.problems.append(f"cannot open: {nav['errorText']}")
            return result
        browser.wait_for("Page.loadEventFired", timeout=60)
        browser.call("Runtime.evaluate", {"expression": MATHJAX_READY_JS, "awaitPromise": True},
                     session=session, timeout=60)
        time.sleep(0.5)  # late console messages, fonts
        facts = browser.call("Runtime.evaluate", {"expression": INSPECT_JS, "returnByValue": True},
                             session=session)["result"]["value"]
        result.facts = facts
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)
        result.screenshot = out / (page.replace("/", "_").removesuffix(".html") + ".png")
        result.screenshot.write_bytes(base64.b64decode(shot["data"]))
        result.problems += console_problems(browser.events, origin) + page_problems(facts, needs_math)
    finally:
        browser.call("Target.closeTarget", {"targetId": target})
    return result


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def find_chromium() -> str | None:
    """``$CHROMIUM``, else the first of chromium, chromium-browser, google-chrome on PATH."""
    names = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((found for name in names if name and (found := shutil.which(name))), None)


def check_site(site: Path, pages: list[str], out: Path, binary: str) -> list[PageResult]:
    """Serve ``site`` on 127.0.0.1 and check each ``PAGE`` or ``PAGE:math``."""
    out.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    results = []
    with tempfile.TemporaryDirectory(prefix="kltrain-chromium-") as profile:
        browser = DevToolsPipe(binary, Path(profile))
        try:
            for spec in pages:
                page, _, need = spec.partition(":")
                if not (site / page).is_file():
                    results.append(PageResult(page, problems=[f"no such page in {site}"]))
                    continue
                results.append(check_page(browser, origin, page, out, need == "math"))
        finally:
            browser.close()
            server.shutdown()
            server.server_close()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path, help="the built site (docs/_build/html)")
    parser.add_argument("--out", type=Path, default=Path("docs/_build/screenshots"), help="screenshot folder")
    parser.add_argument("--page", action="append", dest="pages", metavar="PAGE[:math]",
                        help=f"a page to check, relative to SITE (repeatable; default {' '.join(DEFAULT_PAGES)})")
    args = parser.parse_args(argv)
    binary = find_chromium()
    if binary is None:
        print("browser check: no Chromium found (apt-get install chromium, or set CHROMIUM)", file=sys.stderr)
        return 2
    results = check_site(args.site, args.pages or list(DEFAULT_PAGES), args.out, binary)
    for result in results:
        print(result.line())
    failed = sum(bool(r.problems) for r in results)
    print(f"browser check: {len(results) - failed} of {len(results)} pages ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
