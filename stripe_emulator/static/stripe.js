/* The emulator's stand-in for Stripe.js v3: the subset a checkout page uses, against this
 * emulator, so a browser test needs no network. Same call shapes and result objects as the
 * real library ({paymentMethod} | {error}, {paymentIntent} | {error}, ...):
 *
 *   const stripe = Stripe("pk_test_...");
 *   const elements = stripe.elements({ clientSecret, appearance });
 *   const payment = elements.create("payment"); payment.mount("#el"); payment.on("ready", fn);
 *   await elements.submit(); await stripe.createPaymentMethod({ elements });
 *   await stripe.confirmPayment({ elements, redirect: "if_required" }); // or confirmSetup
 *   await stripe.handleNextAction({ clientSecret });
 *
 * The Payment Element is a plain card form (number, expiry, CVC) whose test numbers map to
 * the emulator's scenarios; 3-D Secure shows a challenge dialog with "Complete" and "Fail".
 * Like the real library, the card never goes anywhere but this emulator, and the CVC only
 * has to be present.
 */
(function () {
  "use strict";
  var BASE = new URL(document.currentScript.src).origin;

  // Styles through the CSSOM, which a page's CSP without 'unsafe-inline' still allows.
  function css(el, styles) {
    Object.assign(el.style, styles);
  }

  function call(method, path, key, data) {
    var url = BASE + "/_stripejs/" + path;
    var init = { method: method, credentials: "omit", headers: {} };
    var payload = Object.assign({ key: key }, data || {});
    if (method === "GET") {
      url += "?" + new URLSearchParams(payload).toString();
    } else {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return fetch(url, init)
      .then(function (response) {
        return response.json().then(function (body) {
          return response.ok ? { result: body } : { error: body.error || { message: "Error" } };
        });
      })
      .catch(function () {
        return { error: { type: "api_connection_error", message: "Could not reach Stripe." } };
      });
  }

  function intentKey(clientSecret) {
    return String(clientSecret).indexOf("seti_") === 0 ? "setupIntent" : "paymentIntent";
  }

  function wrapIntent(clientSecret, intent) {
    var out = {};
    out[intentKey(clientSecret)] = intent;
    return out;
  }

  // ------------------------------------------------------------------ the card form

  var counter = 0;

  function field(id, label, attrs) {
    var wrap = document.createElement("div");
    wrap.className = "StripeElement-field";
    css(wrap, {
      display: "flex",
      flexDirection: "column",
      gap: "4px",
      flex: "1 1 120px",
    });
    var labelEl = document.createElement("label");
    labelEl.htmlFor = id;
    labelEl.textContent = label;
    var input = document.createElement("input");
    input.id = id;
    // No `name`: a form submission of the page around it can never carry the card.
    Object.keys(attrs).forEach(function (k) {
      input.setAttribute(k, attrs[k]);
    });
    input.type = "text";
    css(input, {
      font: "inherit",
      padding: "10px 12px",
      border: "1px solid #8a8f98",
      borderRadius: "var(--border-radius, 6px)",
      background: "transparent",
      color: "inherit",
      minWidth: "0",
    });
    wrap.appendChild(labelEl);
    wrap.appendChild(input);
    return { wrap: wrap, input: input };
  }

  function PaymentElement(group) {
    this.group = group;
    this.handlers = {};
    this.node = null;
    this.inputs = null;
  }

  PaymentElement.prototype.on = function (event, handler) {
    (this.handlers[event] = this.handlers[event] || []).push(handler);
    return this;
  };

  PaymentElement.prototype._emit = function (event, payload) {
    (this.handlers[event] || []).forEach(function (h) {
      h(payload || {});
    });
  };

  PaymentElement.prototype.mount = function (target) {
    var host = typeof target === "string" ? document.querySelector(target) : target;
    if (!host) throw new Error("Stripe: mount target not found");
    var n = ++counter;
    var box = document.createElement("fieldset");
    box.className = "StripeElement";
    css(box, {
      border: "0",
      padding: "0",
      margin: "0",
      display: "flex",
      flexWrap: "wrap",
      gap: "12px",
    });
    var legend = document.createElement("legend");
    legend.textContent = "Card details";
    css(legend, {
      fontWeight: "600",
      marginBottom: "8px",
    });
    box.appendChild(legend);
    var number = field("stripe-card-number-" + n, "Card number", {
      autocomplete: "cc-number",
      inputmode: "numeric",
      placeholder: "1234 1234 1234 1234",
      "aria-required": "true",
    });
    number.wrap.style.flex = "1 1 100%";
    var expiry = field("stripe-card-expiry-" + n, "Expiration date (MM / YY)", {
      autocomplete: "cc-exp",
      inputmode: "numeric",
      placeholder: "MM / YY",
      "aria-required": "true",
    });
    var cvc = field("stripe-card-cvc-" + n, "Security code (CVC)", {
      autocomplete: "cc-csc",
      inputmode: "numeric",
      placeholder: "CVC",
      "aria-required": "true",
    });
    box.appendChild(number.wrap);
    box.appendChild(expiry.wrap);
    box.appendChild(cvc.wrap);
    host.appendChild(box);
    this.node = box;
    this.inputs = { number: number.input, expiry: expiry.input, cvc: cvc.input };
    this.group._element = this;
    var self = this;
    [number.input, expiry.input, cvc.input].forEach(function (input) {
      input.addEventListener("input", function () {
        input.removeAttribute("aria-invalid");
        self._emit("change", { elementType: "payment", complete: !self._problem() });
      });
    });
    setTimeout(function () {
      self._emit("ready", { elementType: "payment" });
    }, 0);
    return this;
  };

  PaymentElement.prototype.unmount = function () {
    if (this.node && this.node.parentNode) this.node.parentNode.removeChild(this.node);
    this.node = null;
  };
  PaymentElement.prototype.destroy = PaymentElement.prototype.unmount;
  PaymentElement.prototype.update = function () {};
  PaymentElement.prototype.focus = function () {
    if (this.inputs) this.inputs.number.focus();
  };

  PaymentElement.prototype._card = function () {
    var digits = this.inputs.number.value.replace(/\D/g, "");
    var exp = this.inputs.expiry.value.replace(/[^\d/]/g, "").split("/");
    var month = parseInt(exp[0], 10);
    var year = parseInt(exp[1], 10);
    if (year < 100) year += 2000;
    return { number: digits, exp_month: month, exp_year: year };
  };

  // {field, message} of the first problem, or null: the checks Stripe's element makes itself.
  PaymentElement.prototype._problem = function () {
    var card = this._card();
    if (card.number.length < 12 || card.number.length > 19) {
      return { input: "number", code: "incomplete_number", message: "Your card number is incomplete." };
    }
    var now = new Date();
    if (!(card.exp_month >= 1 && card.exp_month <= 12) || !(card.exp_year >= 2000)) {
      return { input: "expiry", code: "incomplete_expiry", message: "Your card's expiration date is incomplete." };
    }
    if (card.exp_year < now.getFullYear() || (card.exp_year === now.getFullYear() && card.exp_month < now.getMonth() + 1)) {
      return { input: "expiry", code: "invalid_expiry_year_past", message: "Your card's expiration year is in the past." };
    }
    if (!/^\d{3,4}$/.test(this.inputs.cvc.value.trim())) {
      return { input: "cvc", code: "incomplete_cvc", message: "Your card's security code is incomplete." };
    }
    return null;
  };

  function Elements(stripe, options) {
    this.stripe = stripe;
    this.options = options || {};
    this._element = null;
  }

  Elements.prototype.create = function (type) {
    if (type !== "payment" && type !== "card") throw new Error("Stripe stand-in: only the payment element");
    return new PaymentElement(this);
  };

  Elements.prototype.getElement = function () {
    return this._element;
  };

  Elements.prototype.update = function (options) {
    Object.assign(this.options, options || {});
  };

  Elements.prototype.submit = function () {
    var element = this._element;
    if (!element || !element.inputs) {
      return Promise.resolve({ error: { type: "validation_error", message: "The payment element is not mounted." } });
    }
    var problem = element._problem();
    if (problem) {
      var input = element.inputs[problem.input];
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return Promise.resolve({ error: { type: "validation_error", code: problem.code, message: problem.message } });
    }
    return Promise.resolve({});
  };

  // ------------------------------------------------------------------ 3-D Secure challenge

  function challenge() {
    return new Promise(function (resolve) {
      var previous = document.activeElement;
      var overlay = document.createElement("div");
      css(overlay, {
        position: "fixed",
        inset: "0",
        background: "rgba(0,0,0,0.5)",
        display: "flex",
        alignItems: "center",
        justifyContent: "center",
        zIndex: "2147483647",
      });
      var dialog = document.createElement("div");
      dialog.setAttribute("role", "dialog");
      dialog.setAttribute("aria-modal", "true");
      dialog.setAttribute("aria-labelledby", "stripe-3ds-title");
      css(dialog, {
        background: "#fff",
        color: "#1a1a2e",
        padding: "20px",
        borderRadius: "8px",
        maxWidth: "320px",
        width: "90%",
      });
      var title = document.createElement("h2");
      title.id = "stripe-3ds-title";
      title.textContent = "3D Secure test payment";
      title.style.fontSize = "1.1rem";
      var text = document.createElement("p");
      text.textContent = "This emulated bank asks you to authenticate the payment.";
      dialog.appendChild(title);
      dialog.appendChild(text);
      function button(label, outcome) {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = label;
        css(b, {
          margin: "4px",
          padding: "10px 14px",
        });
        b.addEventListener("click", function () {
          document.body.removeChild(overlay);
          if (previous && previous.focus) previous.focus();
          resolve(outcome);
        });
        dialog.appendChild(b);
        return b;
      }
      var complete = button("Complete authentication", "succeed");
      button("Fail authentication", "fail");
      overlay.appendChild(dialog);
      document.body.appendChild(overlay);
      complete.focus();
    });
  }

  // ------------------------------------------------------------------ Stripe(pk)

  function Stripe(key) {
    if (!(this instanceof Stripe)) return new Stripe(key);
    if (typeof key !== "string" || key.indexOf("pk_") !== 0) {
      throw new Error("Stripe: a publishable key (pk_...) is required");
    }
    this.key = key;
  }

  Stripe.prototype.elements = function (options) {
    return new Elements(this, options);
  };

  Stripe.prototype.createPaymentMethod = function (options) {
    var elements = options && options.elements;
    var element = elements && elements._element;
    if (!element) {
      return Promise.resolve({ error: { type: "invalid_request_error", message: "Pass the elements." } });
    }
    var params = (options && options.params) || {};
    return call("POST", "payment_methods", this.key, {
      card: element._card(),
      billing_details: params.billing_details,
    }).then(function (r) {
      return r.error ? { error: r.error } : { paymentMethod: r.result };
    });
  };

  Stripe.prototype._intent = function (clientSecret) {
    return call("GET", "intents", this.key, { client_secret: clientSecret });
  };

  Stripe.prototype.handleNextAction = function (options) {
    var key = this.key;
    var clientSecret = options && options.clientSecret;
    return this._intent(clientSecret).then(function (r) {
      if (r.error) return { error: r.error };
      if (r.result.status !== "requires_action") return wrapIntent(clientSecret, r.result);
      return challenge().then(function (outcome) {
        return call("POST", "intents/authenticate", key, { client_secret: clientSecret, outcome: outcome }).then(
          function (a) {
            if (a.error) return { error: a.error };
            var intent = a.result;
            var failure = intent.last_payment_error || intent.last_setup_error;
            if (intent.status === "requires_payment_method" && failure) {
              var error = Object.assign({}, failure);
              error[intentKey(clientSecret) === "setupIntent" ? "setup_intent" : "payment_intent"] = intent;
              return { error: error };
            }
            return wrapIntent(clientSecret, intent);
          }
        );
      });
    });
  };

  // confirmPayment / confirmSetup: collect the card, confirm the intent from the browser, run
  // 3-D Secure if asked; with redirect "if_required" nothing navigates.
  Stripe.prototype._confirm = function (options) {
    var self = this;
    var elements = options.elements;
    var clientSecret = options.clientSecret || (elements && elements.options.clientSecret);
    return elements.submit().then(function (submitted) {
      if (submitted.error) return submitted;
      return self.createPaymentMethod({ elements: elements, params: (options.confirmParams || {}).payment_method_data });
    }).then(function (created) {
      if (created.error) return created;
      return call("POST", "intents/confirm", self.key, {
        client_secret: clientSecret,
        payment_method: created.paymentMethod.id,
      }).then(function (r) {
        if (r.error) return { error: r.error };
        if (r.result.status === "requires_action") return self.handleNextAction({ clientSecret: clientSecret });
        return wrapIntent(clientSecret, r.result);
      });
    }).then(function (result) {
      var returnUrl = (options.confirmParams || {}).return_url;
      if (!result.error && options.redirect !== "if_required" && returnUrl) {
        var intent = result.paymentIntent || result.setupIntent;
        window.location.assign(returnUrl + (returnUrl.indexOf("?") < 0 ? "?" : "&") + "redirect_status=" + intent.status);
      }
      return result;
    });
  };

  Stripe.prototype.confirmPayment = function (options) {
    return this._confirm(options || {});
  };
  Stripe.prototype.confirmSetup = function (options) {
    return this._confirm(options || {});
  };
  Stripe.prototype.retrievePaymentIntent = function (clientSecret) {
    return this._intent(clientSecret).then(function (r) {
      return r.error ? { error: r.error } : { paymentIntent: r.result };
    });
  };
  Stripe.prototype.retrieveSetupIntent = function (clientSecret) {
    return this._intent(clientSecret).then(function (r) {
      return r.error ? { error: r.error } : { setupIntent: r.result };
    });
  };

  window.Stripe = Stripe;
})();
