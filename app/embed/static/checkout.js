// The hosted checkout page: Stripe's Payment Element, our confirm, our status streams, and the
// SDK modal's postMessage protocol. Plain ES module, no build step. It talks only to routes
// scoped to this one checkout and posts only to the parent origin the server allowed.

const config = JSON.parse(document.getElementById("checkout-config").textContent);
const $ = (id) => document.getElementById(id);

// --------------------------------------------------------------------------- the parent window

const framed = window.parent !== window;
const allowedParents = config.parentOrigins || [];
let parentOrigin = pickParentOrigin();

function pickParentOrigin() {
  if (!framed) return null;
  const ancestors = window.location.ancestorOrigins;
  let candidate = ancestors && ancestors.length ? ancestors[0] : config.referrerOrigin;
  if (!candidate && allowedParents.length === 1) candidate = allowedParents[0];
  return allowedParents.includes(candidate) ? candidate : null;
}

// Never "*": a message goes to the one allowed parent origin, or nowhere.
function post(type, payload) {
  if (!parentOrigin) return;
  window.parent.postMessage(payload === undefined ? { type } : { type, payload }, parentOrigin);
}

let lastHeight = 0;
function reportHeight() {
  // The content's own height, not the frame's viewport (which the parent sets).
  const height = Math.ceil(document.body.getBoundingClientRect().height);
  if (height !== lastHeight) {
    lastHeight = height;
    post("HEIGHT_CHANGED", { height });
  }
}

// --------------------------------------------------------------------------- appearance

const HEX = /^[0-9a-fA-F]{3}([0-9a-fA-F]{3})?([0-9a-fA-F]{2})?$/;
const RADIUS = /^\d{1,2}(\.\d+)?(px|rem|em)$/;
const FONT = /^[\w\s,'"-]{1,100}$/;
let appearance = { theme: "light", locale: navigator.language || "en", variables: {} };

function hex(value) {
  if (typeof value !== "string") return undefined;
  const bare = value.replace(/^#/, "");
  return HEX.test(bare) ? `#${bare}` : undefined;
}

// Only values of a known form reach the style sheet: the query string and the messages are
// the embedding page's, not ours.
function cleanVariables(raw) {
  const out = {};
  if (!raw || typeof raw !== "object") return out;
  const primary = hex(raw.colorPrimary);
  const background = hex(raw.colorBackground);
  const text = hex(raw.colorText);
  if (primary) out.colorPrimary = primary;
  if (background) out.colorBackground = background;
  if (text) out.colorText = text;
  if (typeof raw.borderRadius === "string" && RADIUS.test(raw.borderRadius)) {
    out.borderRadius = raw.borderRadius;
  }
  if (typeof raw.fontFamily === "string" && FONT.test(raw.fontFamily)) {
    out.fontFamily = raw.fontFamily;
  }
  return out;
}

function fromQuery() {
  const q = new URLSearchParams(window.location.search);
  return {
    theme: q.get("theme"),
    variables: cleanVariables({
      colorPrimary: q.get("primary"),
      colorBackground: q.get("bg"),
      colorText: q.get("text"),
      borderRadius: q.get("radius"),
      fontFamily: q.get("font"),
    }),
  };
}

function applyAppearance(update) {
  if (!update) return;
  if (["light", "dark", "auto"].includes(update.theme)) appearance.theme = update.theme;
  if (typeof update.locale === "string" && /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(update.locale)) {
    appearance.locale = update.locale;
  }
  appearance.variables = { ...appearance.variables, ...cleanVariables(update.variables) };
  const dark =
    appearance.theme === "dark" ||
    (appearance.theme === "auto" && window.matchMedia("(prefers-color-scheme: dark)").matches);
  const root = document.documentElement;
  root.dataset.theme = dark ? "dark" : "light";
  const v = appearance.variables;
  const css = {
    "--color-primary": v.colorPrimary,
    "--color-background": v.colorBackground,
    "--color-text": v.colorText,
    "--border-radius": v.borderRadius,
    "--font-family": v.fontFamily,
  };
  for (const [name, value] of Object.entries(css)) {
    if (value) root.style.setProperty(name, value);
  }
  if (elements) elements.update({ appearance: stripeAppearance() });
  if (current) renderSummary(current);
}

function stripeAppearance() {
  return {
    theme: document.documentElement.dataset.theme === "dark" ? "night" : "stripe",
    variables: { ...appearance.variables },
  };
}

// --------------------------------------------------------------------------- display

function money(amount, currency) {
  try {
    const format = new Intl.NumberFormat(appearance.locale, {
      style: "currency",
      currency: currency.toUpperCase(),
    });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(amount / 10 ** digits);
  } catch {
    return `${amount} ${currency.toUpperCase()}`;
  }
}

function renderSummary(state) {
  $("product-name").textContent = state.product_name;
  const price = money(state.amount, state.currency);
  $("price").textContent = state.interval ? `${price} / ${state.interval}` : price;
  const trial = $("trial");
  if (state.trial_days) {
    trial.hidden = false;
    trial.textContent = `${state.trial_days}-day free trial. You will not be charged today.`;
  }
  $("submit").textContent = state.trial_days
    ? "Start free trial"
    : state.interval
      ? `Subscribe for ${price}`
      : `Pay ${price}`;
}

function showError(message) {
  const box = $("payment-message");
  box.textContent = message;
  box.hidden = false;
  reportHeight();
}

function clearError() {
  const box = $("payment-message");
  box.textContent = "";
  box.hidden = true;
}

function setStatus(text) {
  $("status").textContent = text;
}

function setBusy(busy) {
  $("submit").disabled = busy;
  $("payment-form").setAttribute("aria-busy", busy ? "true" : "false");
}

// --------------------------------------------------------------------------- our API

async function getJson(url, options) {
  const response = await fetch(url, { credentials: "omit", cache: "no-store", ...options });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { ok: response.ok, status: response.status, body: body || {} };
}

async function loadState() {
  // The server waits up to 5 s for a brand-new checkout to open; a slower Stripe gets retries.
  for (let attempt = 0; attempt < 6; attempt += 1) {
    const { ok, body } = await getJson(config.stateUrl);
    if (!ok) throw new Error(body.detail || "This checkout is not available.");
    if (body.status !== "pending") return body;
  }
  throw new Error("The checkout could not be prepared. Please try again.");
}

// Follows the checkout's status: our websocket, else server-sent events, else polling.
function follow(onCheckout) {
  let stopped = false;
  let socket = null;
  let events = null;
  let timer = null;

  const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${config.websocketPath}`;

  function viaWebSocket() {
    let opened = false;
    try {
      socket = new WebSocket(wsUrl);
    } catch {
      viaEvents();
      return;
    }
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "checkout.updated") onCheckout(message.data);
    };
    socket.onclose = () => {
      socket = null;
      if (stopped) return;
      // A stream that worked and ended (idle limit, restart) is reopened; one that never
      // opened means websockets do not get through: fall back.
      if (opened) setTimeout(() => !stopped && viaWebSocket(), 500);
      else viaEvents();
    };
  }

  function viaEvents() {
    if (stopped) return;
    if (typeof EventSource === "undefined") {
      viaPolling();
      return;
    }
    let received = false;
    events = new EventSource(config.streamUrl);
    events.addEventListener("checkout.updated", (event) => {
      received = true;
      onCheckout(JSON.parse(event.data));
    });
    events.onerror = () => {
      if (stopped) return;
      if (!received) {
        events.close();
        events = null;
        viaPolling();
      }
    };
  }

  function viaPolling() {
    if (stopped) return;
    const poll = async () => {
      if (stopped) return;
      const { ok, body } = await getJson(config.stateUrl).catch(() => ({ ok: false, body: {} }));
      if (ok) onCheckout(body);
      if (!stopped) timer = setTimeout(poll, 2000);
    };
    poll();
  }

  viaWebSocket();
  return () => {
    stopped = true;
    if (socket) socket.close();
    if (events) events.close();
    if (timer) clearTimeout(timer);
  };
}

// --------------------------------------------------------------------------- the payment

let stripe = null;
let elements = null;
let current = null; // the checkout as last read
let stopFollowing = null;
let confirmedVersion = null; // the version our latest confirm put the checkout in
let authenticatedVersion = null;
let finished = false;

function paymentFailed(details) {
  const message = details.message || "Your payment could not be completed.";
  showError(message);
  setStatus("");
  setBusy(false);
  const payload = { message };
  if (details.code) payload.code = details.code;
  if (details.declineCode) payload.declineCode = details.declineCode;
  if (details.type) payload.type = details.type;
  post("PAYMENT_FAILED", payload);
}

function fatal(message) {
  finished = true;
  if (stopFollowing) stopFollowing();
  setBusy(true);
  showError(message);
  post("CHECKOUT_ERROR", { error: message });
}

async function succeed() {
  finished = true;
  if (stopFollowing) stopFollowing();
  // The stream's frame has our snake_case Checkout; the SDK's subscription shape is here. A
  // recurring price's subscription row may be recorded a moment after the checkout succeeded
  // (its own Stripe event): wait for it a little rather than report none.
  let { body } = await getJson(config.stateUrl);
  for (let tries = 0; body.interval && !body.sdk_subscription && tries < 20; tries += 1) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    ({ body } = await getJson(config.stateUrl));
  }
  $("payment-form").hidden = true;
  $("success").hidden = false;
  if (body.trial_days) $("success-text").textContent = "Your free trial has started.";
  setStatus("");
  $("success-title").focus();
  reportHeight();
  post("CHECKOUT_SUCCESS", { subscription: body.sdk_subscription || null });
}

async function onCheckout(checkout) {
  if (finished || confirmedVersion === null || checkout.version < confirmedVersion) return;
  current = { ...current, ...checkout };
  switch (checkout.status) {
    case "requires_action": {
      if (authenticatedVersion === checkout.version) return;
      authenticatedVersion = checkout.version;
      const action = checkout.next_action || {};
      const url =
        (action.redirect_to_url && action.redirect_to_url.url) ||
        (action.use_stripe_sdk && action.use_stripe_sdk.stripe_js) ||
        undefined;
      setStatus("Waiting for your bank to confirm…");
      post("3DS_REQUIRED", url ? { threeDSecureUrl: url } : {});
      // The outcome reaches us from Stripe through our status stream, whatever this returns.
      await stripe.handleNextAction({ clientSecret: checkout.client_secret || current.client_secret });
      return;
    }
    case "failed": {
      const error = checkout.last_error || {};
      confirmedVersion = null;
      paymentFailed({
        message: error.message,
        code: error.code || undefined,
        declineCode: error.decline_code || undefined,
        type: "card_error",
      });
      return;
    }
    case "succeeded":
      await succeed();
      return;
    case "expired":
    case "canceled":
      fatal("This checkout has expired. Please start the purchase again.");
      return;
    default:
      setStatus("Processing your payment…");
  }
}

async function onSubmit(event) {
  event.preventDefault();
  if ($("submit").disabled || finished) return;
  setBusy(true);
  clearError();
  const { error: incomplete } = await elements.submit();
  if (incomplete) {
    showError(incomplete.message);
    setBusy(false);
    return;
  }
  post("PROCESSING");
  setStatus("Processing your payment…");
  const { paymentMethod, error } = await stripe.createPaymentMethod({ elements });
  if (error) {
    paymentFailed({
      message: error.message,
      code: error.code,
      declineCode: error.decline_code,
      type: error.type,
    });
    return;
  }
  const { ok, status, body } = await getJson(config.confirmUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ paymentMethodId: paymentMethod.id }),
  });
  if (!ok) {
    if (status === 404 || status === 410) fatal(body.detail || "This checkout is no longer available.");
    else paymentFailed({ message: body.detail, code: body.code, type: "api_error" });
    return;
  }
  confirmedVersion = body.version;
  if (!stopFollowing) stopFollowing = follow(onCheckout);
  else onCheckout(body);
}

// --------------------------------------------------------------------------- parent → page

window.addEventListener("message", (event) => {
  if (event.source !== window.parent || !allowedParents.includes(event.origin)) return;
  const message = event.data;
  if (!message || typeof message !== "object") return;
  if (!parentOrigin && framed) parentOrigin = event.origin;
  if (message.type === "INIT_CHECKOUT" || message.type === "UPDATE_CONFIG") {
    if (message.type === "INIT_CHECKOUT" && message.sessionId && message.sessionId !== config.checkoutId) {
      return; // a modal talking about another checkout: not ours to render
    }
    applyAppearance(message.config || (message.payload && message.payload.config) || message.payload);
  } else if (message.type === "CLOSE_CHECKOUT") {
    finished = true;
    if (stopFollowing) stopFollowing();
  }
});

// --------------------------------------------------------------------------- start

async function start() {
  applyAppearance(fromQuery());
  if (config.error) {
    post("CHECKOUT_ERROR", { error: config.error });
    return;
  }
  $("cancel").addEventListener("click", () => {
    finished = true;
    if (stopFollowing) stopFollowing();
    post("CHECKOUT_CLOSE");
  });
  try {
    current = await loadState();
  } catch (error) {
    fatal(error.message);
    return;
  }
  renderSummary(current);
  if (current.status === "succeeded") {
    confirmedVersion = current.version;
    await succeed();
    return;
  }
  stripe = window.Stripe(config.publishableKey);
  elements = stripe.elements({ clientSecret: current.client_secret, appearance: stripeAppearance() });
  const payment = elements.create("payment", { layout: "tabs" });
  payment.on("ready", () => {
    setBusy(false);
    post("CHECKOUT_READY");
    reportHeight();
    new ResizeObserver(reportHeight).observe(document.body);
  });
  payment.mount("#payment-element");
  $("payment-form").addEventListener("submit", onSubmit);
  if (current.status === "processing" || current.status === "requires_action") {
    // Reloaded mid-payment: pick the outcome up where it is.
    setBusy(true);
    confirmedVersion = current.version;
    stopFollowing = follow(onCheckout);
  }
}

start();
