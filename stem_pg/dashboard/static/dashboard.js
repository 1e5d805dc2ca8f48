// stem_pg dashboard: live refresh from the server's event stream (polling when it is down),
// confirmations before actions, charts drawn with uPlot. No inline script (the CSP forbids it).
(function () {
  "use strict";
  var POLL_MS = 5000;

  function refresh() { document.body.dispatchEvent(new Event("stem:refresh")); }
  function beat() { document.body.dispatchEvent(new Event("stem:beat")); }

  function connect() {
    var url = document.body.dataset.live, badge = document.getElementById("live-state");
    var poller = null;
    if (!url || !window.EventSource) { setInterval(refresh, POLL_MS); return; }
    var source = new EventSource(url);
    source.addEventListener("open", function () {
      if (poller) { clearInterval(poller); poller = null; }
      if (badge) { badge.className = "live-state on"; }
    });
    source.addEventListener("refresh", refresh);
    source.addEventListener("beat", beat);
    source.addEventListener("error", function () {
      if (badge) { badge.className = "live-state off"; }
      if (!poller) { poller = setInterval(refresh, POLL_MS); }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target, question = form.dataset && form.dataset.confirm;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  document.addEventListener("change", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-submit-on-change")) {
      event.target.form.submit();
    }
  });

  function drawCharts() {
    var holder = document.getElementById("chart-data");
    if (!holder || !window.uPlot) { return; }
    var data = JSON.parse(holder.textContent);
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      el.innerHTML = "";
      var width = Math.max(240, Math.min(420, el.clientWidth || 360));
      new window.uPlot({
        width: width, height: 140, title: el.dataset.label, legend: { show: false },
        series: [{}, { label: el.dataset.label, stroke: el.dataset.chart === "failed" ? "#c0392b" : "#2c6fbb",
                       fill: "rgba(44,111,187,0.08)", spanGaps: true }],
        axes: [{}, { size: 40 }]
      }, [data.x, data[el.dataset.chart]], el);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { connect(); drawCharts(); });
  document.addEventListener("htmx:afterSettle", drawCharts);
})();
