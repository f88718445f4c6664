'use strict';
'require baseclass';
'require bonding.format as fmt';

/*
 * The throughput graphs of the status page: one SVG per direction, a polyline per link and one
 * for the total, drawn from the samples of a RateTracker (bonding/rates.js) as luci-mod-status's
 * bandwidth view does: no chart library.
 */

const GRAPH_WIDTH = 600;
const GRAPH_HEIGHT = 160;
const SVG_NS = 'http://www.w3.org/2000/svg';
const COLORS = [ '#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22' ];
const TOTAL_COLOR = '#222';

/*
 * A round upper bound for the graph's scale, at most a quarter above the peak: 1, 1.25, 1.5,
 * 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten (1, 2, 5 alone made a 100.4 Mbit/s total a
 * 200 Mbit/s scale).
 */
const SCALE_STEPS = [ 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10 ];

function niceCeil(v) {
	if (!(v > 0))
		return 1000;
	const mag = Math.pow(10, Math.floor(Math.log10(v)));
	for (const m of SCALE_STEPS)
		if (v <= m * mag * (1 + 1e-9))
			return m * mag;
	return 10 * mag;
}

function svg(tag, attrs) {
	const el = document.createElementNS(SVG_NS, tag);
	for (const k in attrs)
		el.setAttribute(k, String(attrs[k]));
	return el;
}

/* Series of a graph: one per link (name order, stable colours), then the total. */
function graphSeries(samples, dir) {
	const names = [];

	for (const s of samples)
		for (const name in s.links)
			if (names.indexOf(name) < 0)
				names.push(name);

	names.sort();

	const series = names.map((name, i) => ({
		name: name,
		color: COLORS[i % COLORS.length],
		total: false,
		points: samples.filter(s => s.links[name]).map(s => [ s.t, s.links[name][dir] ])
	}));

	series.push({
		name: _('Total'),
		color: TOTAL_COLOR,
		total: true,
		points: samples.map(s => [ s.t, s.total[dir] ])
	});

	return series;
}

function polylinePoints(points, tEnd, peak, window) {
	return points.map(pt => {
		const x = GRAPH_WIDTH - (tEnd - pt[0]) / window * GRAPH_WIDTH;
		const y = GRAPH_HEIGHT - pt[1] / peak * GRAPH_HEIGHT;
		return '%.1f,%.1f'.format(Math.max(0, x), Math.max(0, y));
	}).join(' ');
}

/* The SVG: three grid lines, then the series. */
function drawSvg(series, dir, tEnd, peak, window) {
	const graph = svg('svg', {
		'viewBox': '0 0 %d %d'.format(GRAPH_WIDTH, GRAPH_HEIGHT),
		'preserveAspectRatio': 'none',
		'width': '100%',
		'height': GRAPH_HEIGHT,
		'class': 'bonding-graph',
		'data-direction': dir,
		'style': 'border:1px solid #ccc;background:#fff'
	});

	for (let i = 1; i < 4; i++)
		graph.appendChild(svg('line', {
			'x1': 0, 'x2': GRAPH_WIDTH,
			'y1': GRAPH_HEIGHT * i / 4, 'y2': GRAPH_HEIGHT * i / 4,
			'stroke': '#ddd', 'stroke-width': 1, 'vector-effect': 'non-scaling-stroke'
		}));

	for (const s of series)
		graph.appendChild(svg('polyline', {
			'class': s.total ? 'bonding-line bonding-line-total' : 'bonding-line',
			'data-series': s.name,
			'fill': 'none',
			'stroke': s.color,
			'stroke-width': s.total ? 2.5 : 1.5,
			'vector-effect': 'non-scaling-stroke',
			'points': polylinePoints(s.points, tEnd, peak, window)
		}));

	return graph;
}

/* One direction ('rx' or 'tx'): title and scale, the SVG, a legend with the latest rates. */
function renderGraph(samples, dir, title, opts) {
	const series = graphSeries(samples, dir);
	const tEnd = samples.length ? samples[samples.length - 1].t : 0;
	let peak = 0;

	for (const s of samples)
		peak = Math.max(peak, s.total[dir]);

	peak = niceCeil(peak);

	const legend = series.map(s => E('span', { 'style': 'margin-right:1em;white-space:nowrap' }, [
		E('span', { 'style': 'display:inline-block;width:1em;height:.3em;vertical-align:middle;background:%s'.format(s.color) }),
		' ', s.name, ': ',
		fmt.formatRate(s.points.length ? s.points[s.points.length - 1][1] : null)
	]));

	return E('div', { 'class': 'bonding-graph-box', 'style': 'margin-bottom:1em' }, [
		E('div', {}, [
			E('strong', {}, [ title ]), ' ',
			E('small', {}, [ (opts.interval == 1)
				? _('scale 0 – %s, last %d minutes, one point a second').format(fmt.formatRate(peak), opts.window / 60)
				: _('scale 0 – %s, last %d minutes, one point every %d seconds').format(
					fmt.formatRate(peak), opts.window / 60, opts.interval) ])
		]),
		drawSvg(series, dir, tEnd, peak, opts.window),
		E('div', {}, legend)
	]);
}

return baseclass.extend({
	/*
	 * Download and upload graphs of `samples` (RateTracker.samples); opts.window is the seconds
	 * of history drawn, opts.interval the seconds between two polls.
	 */
	render: function(samples, opts) {
		if (!samples.length)
			return E('em', {}, [ _('Collecting data: the graph starts after two polls.') ]);

		return [
			renderGraph(samples, 'rx', _('Download'), opts),
			renderGraph(samples, 'tx', _('Upload'), opts)
		];
	}
});
