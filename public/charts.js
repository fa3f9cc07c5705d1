// Draws the charts of a page. Every `[data-chart]` box holds an ECharts option built on
// the server; this script loads ECharts (/echarts.js, bundled from the npm package by
// `npm run build:echarts`) only when such a box comes near the viewport, draws it with the
// SVG renderer in the light or dark theme, keeps it sized to its box, and follows boxes
// that appear, change or go away later (client-side navigation). It needs no WASM: charts
// draw before hydration and on pages that never hydrate. A chart below the fold costs
// nothing until the reader scrolls towards it (on a phone the genre chart is far down).
(function () {
  'use strict';
  var SELECTOR = '[data-chart]';
  var dark = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  var loading = null;
  var drawn = new Map(); // element -> { chart, option, theme }
  var near = new WeakSet(); // boxes that have come within reach of the viewport
  var watched = new Set();
  var watcher = window.IntersectionObserver
    ? new IntersectionObserver(
        function (entries) {
          entries.forEach(function (entry) {
            if (entry.isIntersecting) {
              near.add(entry.target);
              watcher.unobserve(entry.target);
              watched.delete(entry.target);
            }
          });
          schedule();
        },
        { rootMargin: '300px 0px' }
      )
    : null;
  var resizer = window.ResizeObserver
    ? new ResizeObserver(function (entries) {
        entries.forEach(function (entry) {
          var state = drawn.get(entry.target);
          if (state) state.chart.resize();
        });
      })
    : null;

  function loadECharts() {
    if (window.echarts) return Promise.resolve(window.echarts);
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var script = document.createElement('script');
        script.src = '/echarts.js';
        script.async = true;
        script.onload = function () {
          window.echarts ? resolve(window.echarts) : reject(new Error('/echarts.js did not define echarts'));
        };
        script.onerror = function () {
          loading = null;
          reject(new Error('/echarts.js could not be loaded'));
        };
        document.head.appendChild(script);
      });
    }
    return loading;
  }

  function theme() {
    return dark && dark.matches ? 'dark' : null;
  }

  function draw(echarts, el) {
    var option = el.getAttribute('data-chart');
    var state = drawn.get(el);
    if (state && state.option === option && state.theme === theme()) return;
    var parsed;
    try {
      parsed = JSON.parse(option);
    } catch (err) {
      console.warn('chart option is not JSON', err);
      return;
    }
    if (state && state.theme !== theme()) {
      state.chart.dispose();
      state = null;
    }
    var chart = state ? state.chart : echarts.init(el, theme(), { renderer: 'svg' });
    chart.setOption(parsed, true);
    if (!state && resizer) resizer.observe(el);
    drawn.set(el, { chart: chart, option: option, theme: theme() });
    el.setAttribute('data-chart-drawn', '');
  }

  function forget() {
    watched.forEach(function (el) {
      if (!el.isConnected) {
        watcher.unobserve(el);
        watched.delete(el);
      }
    });
    drawn.forEach(function (state, el) {
      if (!el.isConnected) {
        if (resizer) resizer.unobserve(el);
        state.chart.dispose();
        drawn.delete(el);
      }
    });
  }

  var pending = false;
  function update() {
    pending = false;
    forget();
    var boxes = [];
    document.querySelectorAll(SELECTOR).forEach(function (el) {
      if (!watcher || near.has(el)) {
        boxes.push(el);
      } else if (!watched.has(el)) {
        watched.add(el);
        watcher.observe(el);
      }
    });
    if (!boxes.length) return;
    loadECharts().then(
      function (echarts) {
        boxes.forEach(function (el) {
          if (el.isConnected) draw(echarts, el);
        });
      },
      function (err) {
        console.warn('charts are not drawn:', err.message);
      }
    );
  }
  function schedule() {
    if (!pending) {
      pending = true;
      window.requestAnimationFrame(update);
    }
  }

  function start() {
    update();
    new MutationObserver(schedule).observe(document.body, {
      childList: true,
      subtree: true,
      attributes: true,
      attributeFilter: ['data-chart'],
    });
    if (dark && dark.addEventListener) dark.addEventListener('change', schedule);
    if (!resizer) window.addEventListener('resize', function () {
      drawn.forEach(function (state) { state.chart.resize(); });
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
