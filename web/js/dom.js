// Small DOM helpers. Text from the server only ever goes through textContent or
// setAttribute (never innerHTML), so nothing it says can become markup.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * Create an element. `props`: class, testid, text, title, attrs {name: value},
 * data {key: value}, on {event: handler}; children: nodes or strings (as text).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  applyProps(node, props);
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

/** Create an SVG element with attributes. */
export function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function applyProps(node, props) {
  if (props.class) node.className = props.class;
  if (props.testid) node.setAttribute("data-testid", props.testid);
  if (props.text != null) node.textContent = String(props.text);
  if (props.title != null) node.setAttribute("title", String(props.title));
  for (const [k, v] of Object.entries(props.attrs || {})) {
    if (v === false || v == null) continue;
    node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const [k, v] of Object.entries(props.data || {})) node.setAttribute(`data-${k}`, String(v));
  for (const [k, fn] of Object.entries(props.on || {})) node.addEventListener(k, fn);
}

/** Set textContent only when it changes (no needless layout work). */
export function setText(node, text) {
  const s = text == null ? "" : String(text);
  if (node.textContent !== s) node.textContent = s;
}

/** Set (or with null/false remove) an attribute only when it changes. */
export function setAttr(node, name, value) {
  if (value == null || value === false) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
    return;
  }
  const s = value === true ? "" : String(value);
  if (node.getAttribute(name) !== s) node.setAttribute(name, s);
}

export function show(node, visible) {
  if (node.hidden === !!visible) node.hidden = !visible;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

/**
 * Keep a newest-first list in sync with `items` (oldest first, each with a growing
 * `seq`): entries older than the first item are removed from the bottom, items newer
 * than the top entry are added on top; if the list went back in time (a replay seek)
 * it is rebuilt. `make(item)` builds one entry; entries carry data-seq.
 */
export function syncNewestFirst(container, items, make) {
  if (!items.length) {
    clear(container);
    return;
  }
  const newest = items[items.length - 1].seq;
  const top = container.firstElementChild;
  const topSeq = top ? Number(top.dataset.seq) : 0;
  if (topSeq > newest) {
    clear(container);
    return syncNewestFirst(container, items, make);
  }
  const oldest = items[0].seq;
  let last = container.lastElementChild;
  while (last && Number(last.dataset.seq) < oldest) {
    const prev = last.previousElementSibling;
    last.remove();
    last = prev;
  }
  const frag = document.createDocumentFragment();
  for (let i = items.length - 1; i >= 0 && items[i].seq > topSeq; i -= 1) frag.append(make(items[i]));
  if (frag.firstChild) container.insertBefore(frag, container.firstChild);
}

/** Run `fn` once on the next animation frame however often this is called before it. */
export function frameScheduler(fn) {
  let pending = 0;
  const run = (t) => {
    pending = 0;
    fn(t);
  };
  return () => {
    if (!pending) pending = requestAnimationFrame(run);
  };
}

/** Call `fn` at most once per `ms`, trailing. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
