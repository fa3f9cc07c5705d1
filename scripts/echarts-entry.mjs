// The ECharts build Personalify serves as /echarts.js: only the parts its charts use (line,
// pie and heatmap charts; grid, calendar, visual map, tooltip, legend; the SVG renderer),
// well under the full build's 370 KB gzip. Built by `npm run build:echarts` (scripts/setup.sh runs it)
// into public/echarts.js, which is generated and git-ignored.
import * as echarts from 'echarts/core';
import { HeatmapChart, LineChart, PieChart } from 'echarts/charts';
import {
  CalendarComponent,
  GridComponent,
  LegendComponent,
  TooltipComponent,
  VisualMapContinuousComponent,
} from 'echarts/components';
import { SVGRenderer } from 'echarts/renderers';

echarts.use([
  LineChart,
  PieChart,
  HeatmapChart,
  GridComponent,
  CalendarComponent,
  VisualMapContinuousComponent,
  TooltipComponent,
  LegendComponent,
  SVGRenderer,
]);
window.echarts = echarts;
