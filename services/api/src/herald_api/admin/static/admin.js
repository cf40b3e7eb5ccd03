// herald admin UI: the little behaviour htmx does not give, kept out of the pages so that
// their Content-Security-Policy can forbid inline scripts.
(function () {
  "use strict";

  // Live counters poll with hx-trigger="every 2s". A hidden tab sends nothing; when it
  // shows again, every poller refreshes at once instead of waiting for its next tick.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    if (source && source.hasAttribute("data-poll") && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && window.htmx) {
      window.htmx.trigger(document.body, "visible-again");
    }
  });

  // A new mailing's times are read in the picked zone; start from the browser's own.
  function pickBrowserZone() {
    var select = document.querySelector("select[data-browser-zone]");
    if (!select || !window.Intl) return;
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === zone) {
        select.value = zone;
        select.dispatchEvent(new Event("change", { bubbles: true }));
        return;
      }
    }
  }

  function minuteLabel(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function drawChart(canvas) {
    var chart = null;
    function load() {
      if (document.visibilityState !== "visible" && chart) return;
      fetch(canvas.dataset.chartSrc, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("chart data: HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          var labels = data.minutes.map(minuteLabel);
          if (chart) {
            chart.data.labels = labels;
            chart.data.datasets[0].data = data.counts;
            chart.update("none");
            return;
          }
          chart = new window.Chart(canvas, {
            type: "bar",
            data: { labels: labels, datasets: [{ label: "messages sent", data: data.counts, borderWidth: 0 }] },
            options: {
              animation: false,
              maintainAspectRatio: false,
              plugins: { legend: { display: false } },
              scales: {
                x: { ticks: { autoSkip: true, maxTicksLimit: 12, maxRotation: 0 } },
                y: { beginAtZero: true, ticks: { precision: 0 } }
              }
            }
          });
        })
        .catch(function (error) {
          canvas.setAttribute("aria-label", String(error));
        });
    }
    load();
    var seconds = Number(canvas.dataset.refreshSeconds || 0);
    if (seconds > 0) window.setInterval(load, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    pickBrowserZone();
    if (window.Chart) {
      document.querySelectorAll("canvas[data-chart-src]").forEach(drawChart);
    }
  });
})();
