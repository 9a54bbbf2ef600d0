// Talking to the API: relative URLs, the optional API key, and ETag revalidation.
//
// The page is served at "/" by `chalice local` and at "/<stage>/" behind API Gateway, so every
// URL is resolved against the page's own directory — never against the host root.

const KEY_STORE = "ocd.apiKey";
const CACHE_LIMIT = 200;

export const BASE = location.origin + location.pathname.slice(0, location.pathname.lastIndexOf("/") + 1);

export class HttpError extends Error {
  constructor(status, body) {
    super(body && body.message ? `${status}: ${body.message}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function url(path, params = {}) {
  const u = new URL(path, BASE);
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") u.searchParams.set(k, String(v));
  }
  return u.toString();
}

// ---- the API key -----------------------------------------------------------------------------
export function storedKey() {
  try {
    return localStorage.getItem(KEY_STORE) || "";
  } catch {
    return "";
  }
}

function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORE, key);
    else localStorage.removeItem(KEY_STORE);
  } catch {
    /* private mode: the key lives for this page only */
  }
  memoryKey = key;
}

let memoryKey = storedKey();
let asking = null; // one prompt for every request that met a 401 at the same time

/** Show the key form; resolves once a key is saved, rejects when the form is dismissed. */
export function askForKey(reason) {
  if (asking) return asking;
  const dialog = document.getElementById("key-dialog");
  const form = dialog.querySelector("form");
  const input = dialog.querySelector("input");
  dialog.querySelector("[data-key-reason]").textContent = reason;
  input.value = "";
  asking = new Promise((resolve, reject) => {
    const done = (ok) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", onClose);
      asking = null;
      ok ? resolve() : reject(new HttpError(401, { message: "an API key is needed" }));
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      storeKey(key);
      dialog.close("saved");
      done(true);
    };
    const onClose = () => done(dialog.returnValue === "saved");
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", onClose);
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
  return asking;
}

export const hasKey = () => Boolean(memoryKey);

// ---- fetching --------------------------------------------------------------------------------
const cache = new Map(); // url -> {etag, data}; a 304 answers with the cached body

function remember(key, etag, data) {
  cache.delete(key);
  cache.set(key, { etag, data });
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value);
}

/** GET JSON from a route. Resolves to the body (the same object again when unchanged: 304). */
export async function getJSON(path, params) {
  const target = url(path, params);
  for (let attempt = 0; ; attempt += 1) {
    const headers = { Accept: "application/json" };
    if (memoryKey) headers["x-api-key"] = memoryKey;
    const hit = cache.get(target);
    if (hit) headers["If-None-Match"] = hit.etag;
    const res = await fetch(target, { headers, cache: "no-store" });
    if (res.status === 304 && hit) return hit.data;
    if (res.status === 401 && attempt < 3) {
      await askForKey(memoryKey ? "That key was not accepted. Try again:" : "This dashboard needs an API key.");
      continue;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new HttpError(res.status, body);
    const etag = res.headers.get("ETag");
    if (etag) remember(target, etag, body);
    return body;
  }
}
