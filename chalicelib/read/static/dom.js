// DOM helpers. Data only ever reaches the page as text nodes or attribute values: no innerHTML.

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) node.dataset[k] = String(v);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** h("td", {class: "num"}, "1.23") — an HTML element with attributes and text/element children. */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** A note shown where data would be: "No alerts yet", "Loading…", an error. */
export function note(text, kind = "muted") {
  return h("p", { class: `note ${kind}` }, text);
}
