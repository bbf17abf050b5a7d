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

  document.addEventListener("DOMContentLoaded", function () {
    autosubmit();
    trendChart();
  });
})();
