/*
 * Settle checkout: keeps the page's state live by polling /checkout/{id}/status (the server renders
 * every state; this script only swaps the fragment in), runs the expiry countdown, copies the
 * deposit address, offers an injected EIP-1193 wallet when there is one, and returns the customer
 * to the merchant once paid. Every string it shows comes from the page (api/checkout/strings.py).
 * The page works without it; reloading shows the current state.
 */
(function () {
  "use strict";

  var root = document.getElementById("checkout");
  if (!root) {
    return;
  }
  var strings = JSON.parse(document.getElementById("checkout-strings").textContent);
  var stateBox = document.getElementById("checkout-state");
  var announcer = document.getElementById("checkout-announcement");
  var expiry = document.getElementById("checkout-expiry");
  var countdown = document.getElementById("checkout-countdown");

  var POLL_BACKOFF_MAX_MS = 30000;
  var pollIntervalMs = Number(root.dataset.pollIntervalMs) || 2000;
  var redirectDelayMs = Number(root.dataset.redirectDelayMs) || 0;
  var version = root.dataset.version;
  var terminal = root.dataset.terminal === "true";
  var expiresAtMs = Date.parse(root.dataset.expiresAt);
  // The server's clock decides expiry: correct for a customer's clock that is off.
  var clockOffsetMs = (Date.parse(root.dataset.serverNow) || Date.now()) - Date.now();
  var failures = 0;
  var pollTimer = null;
  var redirectTimer = null;
  var walletBusy = false;

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : match;
    });
  }

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element) {
      element.textContent = text;
    }
  }

  // ------------------------------------------------------------------ countdown
  function pad(number) {
    return number < 10 ? "0" + number : String(number);
  }

  function tick() {
    if (terminal || !countdown) {
      return;
    }
    var leftS = Math.max(0, Math.floor((expiresAtMs - (Date.now() + clockOffsetMs)) / 1000));
    var hours = Math.floor(leftS / 3600);
    var minutes = Math.floor((leftS % 3600) / 60);
    var seconds = leftS % 60;
    var time = (hours > 0 ? hours + ":" + pad(minutes) : String(minutes)) + ":" + pad(seconds);
    countdown.textContent = leftS > 0 ? format(strings.expires_in, { time: time }) : strings.expires_now;
    countdown.hidden = false;
  }

  // ------------------------------------------------------------------ live state
  function schedule(delayMs) {
    if (pollTimer !== null) {
      clearTimeout(pollTimer);
    }
    pollTimer = terminal ? null : setTimeout(poll, delayMs);
  }

  function statusUrl() {
    // The client secret is already in this page's URL; it is the status route's only key.
    return root.dataset.statusUrl + window.location.search;
  }

  function poll() {
    pollTimer = null;
    fetch(statusUrl(), { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 429) {
          var retryS = Number(response.headers.get("Retry-After")) || 5;
          return { retryAfterMs: retryS * 1000 };
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        setText("status-error", "");
        if (data.retryAfterMs) {
          schedule(data.retryAfterMs);
          return;
        }
        apply(data);
        schedule(data.poll_after_ms || pollIntervalMs);
      })
      .catch(function () {
        failures += 1;
        setText("status-error", strings.status_unavailable);
        schedule(Math.min(POLL_BACKOFF_MAX_MS, pollIntervalMs * Math.pow(2, failures)));
      });
  }

  function apply(data) {
    terminal = Boolean(data.terminal);
    root.dataset.terminal = terminal ? "true" : "false";
    if (data.version !== version) {
      version = data.version;
      root.dataset.version = version;
      root.dataset.state = data.state;
      stateBox.innerHTML = data.html;
      announcer.textContent = data.announcement;
      setUpWallet();
    }
    if (terminal && expiry) {
      expiry.hidden = true;
    }
    if (data.redirect_url) {
      redirectSoon(data.redirect_url, data.redirect_after_ms);
    }
  }

  function redirectSoon(url, delayMs) {
    if (redirectTimer !== null || !/^https?:\/\//i.test(url)) {
      return;
    }
    redirectTimer = setTimeout(function () {
      window.location.assign(url);
    }, typeof delayMs === "number" ? delayMs : redirectDelayMs);
  }

  // ------------------------------------------------------------------ copy
  function copyFallback(element) {
    var selection = window.getSelection();
    var range = document.createRange();
    range.selectNodeContents(element);
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    return copied;
  }

  function copy(button) {
    var target = document.getElementById(button.dataset.copyTarget);
    if (!target) {
      return;
    }
    var text = target.textContent.trim();
    var done = function (copied) {
      setText("copy-status", copied ? strings.copied : strings.copy_failed);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { done(true); },
        function () { done(copyFallback(target)); }
      );
    } else {
      done(copyFallback(target));
    }
  }

  // ------------------------------------------------------------------ wallet (EIP-1193)
  function provider() {
    var ethereum = window.ethereum;
    return ethereum && typeof ethereum.request === "function" ? ethereum : null;
  }

  function setUpWallet() {
    var button = document.getElementById("wallet-pay");
    if (button) {
      button.hidden = provider() === null;
      button.disabled = walletBusy;
    }
  }

  function walletStatus(text) {
    setText("wallet-status", text);
  }

  function payWithWallet(button) {
    var ethereum = provider();
    if (ethereum === null || walletBusy) {
      return;
    }
    walletBusy = true;
    button.disabled = true;
    var chainId = button.dataset.chainId;
    var account = null;
    walletStatus(strings.wallet_connecting);
    ethereum
      .request({ method: "eth_requestAccounts" })
      .then(function (accounts) {
        if (!accounts || !accounts.length) {
          throw new Error(strings.wallet_no_account);
        }
        account = accounts[0];
        return ethereum.request({ method: "eth_chainId" });
      })
      .then(function (current) {
        if (String(current).toLowerCase() === chainId.toLowerCase()) {
          return null;
        }
        walletStatus(format(strings.wallet_switching, { chain: button.dataset.chainName }));
        return ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId: chainId }] });
      })
      .then(function () {
        walletStatus(strings.wallet_confirm);
        return ethereum.request({
          method: "eth_sendTransaction",
          params: [{ from: account, to: button.dataset.token, data: button.dataset.calldata, value: "0x0" }],
        });
      })
      .then(function () {
        walletStatus(strings.wallet_sent);
        schedule(0);
      })
      .catch(function (error) {
        var reason = (error && (error.message || error.code)) || String(error);
        walletStatus(format(strings.wallet_rejected, { reason: reason }));
      })
      .then(function () {
        walletBusy = false;
        var current = document.getElementById("wallet-pay");
        if (current) {
          current.disabled = false;
        }
      });
  }

  // ------------------------------------------------------------------ wiring
  // Delegated: the state fragment (and its buttons) is replaced as the state changes.
  root.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button || !root.contains(button)) {
      return;
    }
    if (button.id === "copy-address") {
      copy(button);
    } else if (button.id === "wallet-pay") {
      payWithWallet(button);
    }
  });

  var errorLine = document.createElement("p");
  errorLine.id = "status-error";
  errorLine.className = "feedback warning";
  errorLine.setAttribute("role", "status");
  stateBox.parentNode.insertBefore(errorLine, stateBox.nextSibling);

  setUpWallet();
  // Wallets may inject themselves after load (EIP-6963 announces; older ones set window.ethereum).
  window.addEventListener("ethereum#initialized", setUpWallet, { once: true });
  tick();
  setInterval(tick, 1000);
  if (root.dataset.redirectUrl) {
    redirectSoon(root.dataset.redirectUrl, redirectDelayMs);
  }
  schedule(pollIntervalMs);
})();
