// Draws the charts of a page. Every `[data-chart-src]` box names the URL of an ECharts
// option built on the server (charming); only when such a box comes near the viewport does
// this script fetch that option and ECharts itself (/echarts.js, bundled from the npm
// package by `npm run build:echarts`), then draw it with the SVG renderer in the light or
// dark theme, keep it sized to its box, and follow boxes that appear, change or go away
// later (client-side navigation). It needs no WASM: charts draw before hydration and on
// pages that never hydrate. A chart below the fold costs nothing until the reader scrolls
// towards it (on a phone the genre chart is far down). A chart that cannot be fetched says
// so in its box.
(function () {
  'use strict';
  var SELECTOR = '[data-chart-src]';
  var dark = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  var loading = null;
  var drawn = new Map(); // element -> { chart, src, theme }
  var options = new Map(); // src -> Promise of the parsed option
  var asked = new WeakMap(); // element -> the src being fetched or that failed for it
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

  function loadOption(src) {
    if (!options.has(src)) {
      var request = fetch(src, { headers: { Accept: 'application/json' } }).then(function (response) {
        if (!response.ok) throw new Error(src + ' answered ' + response.status);
        return response.json();
      });
      // A failure is not remembered: the next look at the box tries again.
      request.catch(function () {
        options.delete(src);
      });
      options.set(src, request);
    }
    return options.get(src);
  }

  function theme() {
    return dark && dark.matches ? 'dark' : null;
  }

  function unavailable(el) {
    if (drawn.has(el) || el.querySelector('.chart__unavailable')) return;
    var note = document.createElement('p');
    note.className = 'chart__unavailable';
    note.textContent = 'This chart is unavailable right now.';
    el.appendChild(note);
    el.setAttribute('data-chart-failed', '');
  }

  function draw(echarts, el, src, option) {
    var state = drawn.get(el);
    if (state && state.src === src && state.theme === theme()) return;
    if (state && state.theme !== theme()) {
      state.chart.dispose();
      state = null;
    }
    var note = el.querySelector('.chart__unavailable');
    if (note) note.remove();
    el.removeAttribute('data-chart-failed');
    var chart = state ? state.chart : echarts.init(el, theme(), { renderer: 'svg' });
    chart.setOption(option, true);
    if (!state && resizer) resizer.observe(el);
    drawn.set(el, { chart: chart, src: src, theme: theme() });
    asked.delete(el);
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
    boxes.forEach(function (el) {
      var src = el.getAttribute('data-chart-src');
      var state = drawn.get(el);
      if (state && state.src === src && state.theme === theme()) return;
      // Asked already (in flight, or failed: tried again when the box names another URL).
      if (asked.get(el) === src && !(state && state.src === src)) return;
      asked.set(el, src);
      Promise.all([loadECharts(), loadOption(src)]).then(
        function (loaded) {
          // The box may have gone, or been pointed elsewhere, meanwhile.
          if (el.isConnected && el.getAttribute('data-chart-src') === src) draw(loaded[0], el, src, loaded[1]);
        },
        function (err) {
          console.warn('chart not drawn:', err.message);
          if (el.isConnected) unavailable(el);
        }
      );
    });
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
      attributeFilter: ['data-chart-src'],
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
