// The demo merchant app: what the React SDK does, in plain JavaScript.
const API = window.location.origin;
const VERSION = { "X-BillingOS-Version": "2026-11-27" };
const $ = (id) => document.getElementById(id);
const user = new URLSearchParams(window.location.search).get("user") || "demo_user";
let token = null;

function money(amount, currency) {
  const format = new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() });
  return format.format(amount / 10 ** format.resolvedOptions().maximumFractionDigits);
}

async function api(path, options = {}) {
  const response = await fetch(API + path, {
    ...options,
    headers: { ...VERSION, Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

async function refreshAccount() {
  const [subscriptions, entitlements] = await Promise.all([
    api("/v1/customer/subscriptions"),
    api("/v1/customer/entitlements"),
  ]);
  const subs = $("subscriptions");
  subs.replaceChildren(...subscriptions.data.map((s) => item(`${productNames[s.product_id] || s.product_id}: ${s.status}`)));
  if (!subscriptions.data.length) subs.replaceChildren(item("None yet"));
  const ents = $("entitlements");
  ents.replaceChildren(...entitlements.data.map((e) => item(`${e.feature_key} (${e.source})`)));
  if (!entitlements.data.length) ents.replaceChildren(item("None yet"));
}

const productNames = {};

function renderPricing(products) {
  const pricing = $("pricing");
  pricing.replaceChildren();
  for (const product of products) {
    productNames[product.id] = product.name;
    const card = document.createElement("article");
    card.className = "plan";
    const title = document.createElement("h2");
    title.textContent = product.name;
    card.append(title);
    if (product.description) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = product.description;
      card.append(p);
    }
    const features = document.createElement("ul");
    features.append(...product.features.map((f) => item(f.name)));
    card.append(features);
    for (const price of product.prices) {
      const button = document.createElement("button");
      const amount = money(price.amount, price.currency);
      const label = price.interval ? `${amount} / ${price.interval}` : amount;
      button.textContent = price.trial_period_days ? `Try free for ${price.trial_period_days} days, then ${label}` : `Buy ${product.name} — ${label}`;
      button.addEventListener("click", () => (price.amount === 0 ? subscribeFree(price.id) : buy(price.id)));
      card.append(button);
    }
    pricing.append(card);
  }
  pricing.setAttribute("aria-busy", "false");
}

// ---------------------------------------------------------------- the checkout modal

// A free plan needs no card: no checkout, just the subscription.
async function subscribeFree(priceId) {
  try {
    await api("/v1/customer/subscription/create", { method: "POST", body: JSON.stringify({ price_id: priceId }) });
    $("toast").textContent = "You are on the free plan.";
    refreshAccount();
  } catch (error) {
    $("toast").textContent = error.message;
  }
}

const modal = $("checkout-modal");
const frame = $("checkout-frame");
let openCheckoutId = null;

async function buy(priceId) {
  $("toast").textContent = "";
  let checkout;
  try {
    checkout = await api("/v1/checkout/create", {
      method: "POST",
      headers: { Prefer: "wait=10", "Idempotency-Key": `${user}:${priceId}:${Date.now()}` },
      body: JSON.stringify({ price_id: priceId }),
    });
  } catch (error) {
    $("toast").textContent = error.message;
    return;
  }
  openCheckoutId = checkout.id;
  frame.src = `${API}/embed/checkout/${checkout.id}?theme=light&primary=635bff`;
  modal.showModal();
}

function closeModal() {
  openCheckoutId = null;
  modal.close();
  frame.src = "about:blank";
}

window.addEventListener("message", (event) => {
  if (event.origin !== API || event.source !== frame.contentWindow) return;
  const message = event.data || {};
  switch (message.type) {
    case "CHECKOUT_READY":
      frame.contentWindow.postMessage(
        { type: "INIT_CHECKOUT", sessionId: openCheckoutId, config: { theme: "light", locale: "en" } },
        API,
      );
      break;
    case "HEIGHT_CHANGED":
      frame.style.height = `${Math.min(message.payload.height + 8, window.innerHeight - 40)}px`;
      break;
    case "CHECKOUT_SUCCESS":
      closeModal();
      $("toast").textContent = "Thank you! Your purchase is active.";
      refreshAccount();
      break;
    case "CHECKOUT_CLOSE":
    case "CHECKOUT_ERROR":
      closeModal();
      if (message.payload && message.payload.error) $("toast").textContent = message.payload.error;
      break;
    default:
      break;
  }
});

// ---------------------------------------------------------------- live account updates

function followCustomer() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/v1/customer/ws?token=${encodeURIComponent(token)}`);
  socket.onmessage = () => refreshAccount();
  socket.onclose = () => setTimeout(followCustomer, 2000);
}

async function start() {
  const response = await fetch(`${API}/demo/session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ externalId: user }),
  });
  const session = await response.json();
  if (!response.ok) {
    $("pricing").textContent = session.detail || "The demo is not available.";
    return;
  }
  token = session.token;
  $("who").textContent = `signed in as ${user}`;
  const products = await api("/v1/products");
  renderPricing(products.data);
  await refreshAccount();
  followCustomer();
}

start();
