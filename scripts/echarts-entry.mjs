// The ECharts build Personalify serves as /echarts.js: only the parts its charts use (line
// and pie charts, grid, tooltip, legend, the SVG renderer), about 200 KB gzip instead of
// the full build's 370 KB. Built by `npm run build:echarts` (scripts/setup.sh runs it)
// into public/echarts.js, which is generated and git-ignored.
import * as echarts from 'echarts/core';
import { LineChart, PieChart } from 'echarts/charts';
import { GridComponent, TooltipComponent, LegendComponent } from 'echarts/components';
import { SVGRenderer } from 'echarts/renderers';

echarts.use([LineChart, PieChart, GridComponent, TooltipComponent, LegendComponent, SVGRenderer]);
window.echarts = echarts;
