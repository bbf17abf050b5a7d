// The console's own script: auto-submitting filters and the charts. No inline script is allowed
// by the pages' Content-Security-Policy, so behaviour is attached here by data attributes.
(function () {
  "use strict";

  function autosubmit() {
    document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () {
        if (el.form) { el.form.requestSubmit(); }
      });
    });
  }

  function trendChart() {
    var box = document.getElementById("trend-chart");
    var data = document.getElementById("trend-data");
    if (!box || !data || typeof echarts === "undefined") { return; }
    var trend = JSON.parse(data.textContent);
    var chart = echarts.init(box, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis", renderMode: "richText" },
      legend: { top: 0, type: "scroll" },
      grid: { left: 40, right: 16, top: 40, bottom: 50 },
      xAxis: { type: "category", data: trend.labels },
      yAxis: { type: "value" },
      dataZoom: [{ type: "inside" }],
      series: trend.series.map(function (s) {
        return { name: s.name, type: "line", showSymbol: false, data: s.data };
      })
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }

  // The session's CSRF token (the readable `funnel_csrf` cookie), which every request that
  // changes something must carry when the session cookie signs it.
  function csrf() {
    var m = document.cookie.match(/(?:^|;\s*)funnel_csrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function csrfOnForms() {
    document.body.addEventListener("htmx:configRequest", function (e) {
      var t = csrf();
      if (t) { e.detail.headers["X-CSRF-Token"] = t; }
    });
  }

  // Signing in: `POST /session` with the login and password (or an API token) as JSON sets the
  // session cookies; then back to the page that asked for it. A refusal is shown in place.
  function signIn() {
    var form = document.getElementById("sign-in");
    if (!form) { return; }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var out = document.getElementById("sign-in-result");
      fetch("/session", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(form.elements.login.value.trim()
          ? { login: form.elements.login.value.trim(), password: form.elements.password.value }
          : { token: form.elements.token.value.trim() }),
        credentials: "same-origin"
      }).then(function (r) {
        if (r.ok) {
          window.location.assign(form.dataset.next || "/");
          return null;
        }
        return r.json().then(function (p) {
          out.textContent = document.documentElement.lang === "en" ? p.message_en : p.message_zh;
          out.hidden = false;
        });
      }).catch(function () {
        out.textContent = document.documentElement.lang === "en" ? "The server did not answer." : "服务器无响应。";
        out.hidden = false;
      });
    });
  }

  // Accepting an invitation with a password: `POST /invitations/{token}`, then the sign-in page.
  function acceptInvitation() {
    var form = document.getElementById("accept-invitation");
    if (!form) { return; }
    var en = document.documentElement.lang === "en";
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var out = document.getElementById("accept-invitation-result");
      fetch("/invitations/" + encodeURIComponent(form.dataset.token), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ password: form.elements.password.value }),
        credentials: "same-origin"
      }).then(function (r) {
        return r.json().then(function (p) {
          if (r.ok) {
            window.location.assign("/sign-in");
            return;
          }
          out.textContent = en ? p.message_en : p.message_zh;
          out.hidden = false;
        });
      }).catch(function () {
        out.textContent = en ? "The server did not answer." : "服务器无响应。";
        out.hidden = false;
      });
    });
  }

  // Signing out: `DELETE /session` (with the CSRF token), then the sign-in page, or first the
  // company's sign-in service when the session was begun there and it signs out too (the answer's
  // `provider_sign_out`; it sends the browser back to the sign-in page).
  function signOut() {
    var button = document.getElementById("sign-out");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var next = "/sign-in";
      fetch("/session", {
        method: "DELETE",
        headers: { "X-CSRF-Token": csrf() },
        credentials: "same-origin"
      }).then(function (res) {
        return res.ok ? res.json() : null;
      }).then(function (body) {
        var url = body && body.provider_sign_out;
        if (typeof url === "string" && /^https?:\/\//.test(url)) { next = url; }
      }).catch(function () {}).finally(function () { window.location.assign(next); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    autosubmit();
    csrfOnForms();
    signIn();
    acceptInvitation();
    signOut();
    trendChart();
  });
})();
