'use strict';
'require view';
'require dom';
'require poll';
'require rpc';
'require ui';

/*
 * Services → Bonding → Status: what every link is doing and why, refreshed every two seconds
 * from the `bonding` ubus object (bondingd).  The throughput graph is computed here from the
 * polled rx_bytes/tx_bytes counters, one point per poll, as luci-mod-status's bandwidth view
 * does: no chart library, plain SVG polylines.
 */

const callStatus = rpc.declare({
	object: 'bonding',
	method: 'status',
	expect: { '': {} }
});

const callPath = rpc.declare({
	object: 'bonding',
	method: 'path',
	params: [ 'name' ],
	expect: { '': {} },
	reject: true
});

const callSetPath = rpc.declare({
	object: 'bonding',
	method: 'set_path',
	params: [ 'name', 'backup' ],
	reject: true
});

const callProbe = rpc.declare({
	object: 'bonding',
	method: 'probe',
	params: [ 'name' ],
	reject: true
});

const callReload = rpc.declare({
	object: 'bonding',
	method: 'reload',
	expect: { '': {} },
	reject: true
});

const POLL_INTERVAL = 2;	/* seconds between two status polls */
const GRAPH_WINDOW = 300;	/* seconds of history drawn in the graphs */
const MIN_SAMPLE_SPAN = 1;	/* seconds: closer counter readings (a poll right after a probe) wait */
const GRAPH_WIDTH = 600;
const GRAPH_HEIGHT = 160;
const SVG_NS = 'http://www.w3.org/2000/svg';
const COLORS = [ '#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22' ];
const TOTAL_COLOR = '#222';

const STATE_STYLE = {
	up:       'background:#2e7d32;color:#fff',
	degraded: 'background:#ef6c00;color:#fff',
	backup:   'background:#1565c0;color:#fff',
	down:     'background:#c62828;color:#fff',
	disabled: 'background:#757575;color:#fff',
	active:   'background:#2e7d32;color:#fff',
	standby:  'background:#1565c0;color:#fff'
};

function isObject(v) {
	return v != null && typeof v == 'object' && !Array.isArray(v);
}

/* An error in one line: LuCI's RPC errors carry the call stack after the message. */
function errorText(err) {
	const msg = (err && err.message) ? err.message : String(err);
	return msg.split('\n')[0].replace(/\s+at\s+\S+\s+\(.*$/, '');
}

function isNum(v) {
	return typeof v == 'number' && isFinite(v);
}

/* Bits per second in words: 1000-based units, as link rates are sold. */
function formatRate(bps) {
	if (!isNum(bps))
		return '–';
	if (bps < 1e3)
		return '%d bit/s'.format(Math.round(bps));
	if (bps < 1e6)
		return '%.1f kbit/s'.format(bps / 1e3);
	if (bps < 1e9)
		return '%.1f Mbit/s'.format(bps / 1e6);
	return '%.2f Gbit/s'.format(bps / 1e9);
}

function formatMs(v) {
	return isNum(v) ? '%.1f ms'.format(v) : '–';
}

function formatPct(v) {
	return isNum(v) ? '%.1f %%'.format(v) : '–';
}

function formatDuration(seconds) {
	if (!isNum(seconds) || seconds < 0)
		return '–';
	const s = Math.floor(seconds);
	if (s < 60)
		return _('%ds').format(s);
	if (s < 3600)
		return _('%dm %ds').format(Math.floor(s / 60), s % 60);
	if (s < 86400)
		return _('%dh %dm').format(Math.floor(s / 3600), Math.floor(s / 60) % 60);
	return _('%dd %dh').format(Math.floor(s / 86400), Math.floor(s / 3600) % 24);
}

function stateLabel(state) {
	switch (state) {
	case 'up':       return _('up');
	case 'degraded': return _('degraded');
	case 'backup':   return _('backup');
	case 'down':     return _('down');
	case 'disabled': return _('disabled');
	case 'active':   return _('active');
	case 'standby':  return _('standby');
	default:         return String(state || _('unknown'));
	}
}

function badge(state) {
	return E('span', {
		'class': 'bonding-badge bonding-badge-%s'.format(state),
		'data-state': state,
		'style': (STATE_STYLE[state] || 'background:#999;color:#fff') +
			';border-radius:3px;padding:1px 6px;margin-right:4px;white-space:nowrap'
	}, [ stateLabel(state) ]);
}

/* A server's state in words, where bondingd gave no reason. */
function serverWords(state) {
	switch (state) {
	case 'active':   return _('New connections go through this server.');
	case 'standby':  return _('Ready to take over when the active server stops answering.');
	case 'down':     return _('Does not answer through any link.');
	case 'disabled': return _('Disabled in the configuration.');
	default:         return _('bondingd reported an unknown state.');
	}
}

/*
 * What a link's state means for the user: its badges and, for anything not plainly up,
 * the reason in words.  bondingd's own reason comes first; our words fill in when it is empty.
 */
function describeLink(p) {
	const state = String(p.state || 'unknown');
	const badges = [ state ];
	const reasons = [];

	if (p.reason)
		reasons.push(String(p.reason));

	switch (state) {
	case 'up':
		if (p.backup) {
			badges[0] = 'backup';
			reasons.push(p.forced_backup
				? _('Forced backup: carries traffic only when no other link is up.')
				: _('Backup: carries traffic only when no other link is up.'));
		}
		break;

	case 'degraded':
		if (p.backup !== false)
			badges.push('backup');
		if (!p.reason)
			reasons.push(_('RTT or loss is far worse than on the best link.'));
		reasons.push(_('Used as backup until it recovers.'));
		break;

	case 'down':
		if (!p.reason)
			reasons.push(_('Down: bondingd gave no reason.'));
		break;

	case 'disabled':
		if (!p.reason)
			reasons.push(p.enabled === false
				? _('Disabled in the configuration or at run time: not probed, not used.')
				: _('Bonding is disabled: not probed, not used.'));
		break;

	default:
		reasons.push(_('bondingd reported an unknown state.'));
	}

	if (p.error)
		reasons.push(String(p.error));

	return { state: state, badges: badges, reason: reasons.join(' ') };
}

/*
 * Rates from pairs of byte counters.  The clock is bondingd's own (`counters_at`, when the daemon
 * says when it read the counters, else `uptime`), so neither network latency nor the browser's
 * timers skew the rates; without either we fall back to the browser's clock.  A counter that goes
 * backwards (device re-created, daemon restarted) yields no rate for that pair.
 */
function RateTracker(windowSeconds) {
	this.window = windowSeconds;
	this.prev = null;
	this.samples = [];
}

RateTracker.prototype.update = function(status, nowMs) {
	let clock, t;

	if (isNum(status.counters_at)) {
		clock = 'daemon';
		t = status.counters_at;
	}
	else if (isNum(status.uptime)) {
		clock = 'daemon';
		t = status.uptime;
	}
	else {
		clock = 'browser';
		t = nowMs / 1000;
	}

	const counters = {};
	const paths = isObject(status.paths) ? status.paths : {};

	for (const name in paths) {
		const p = paths[name];
		if (isObject(p) && isNum(p.rx_bytes) && isNum(p.tx_bytes))
			counters[name] = { rx: p.rx_bytes, tx: p.tx_bytes };
	}

	const prev = this.prev;

	if (prev && prev.clock == clock && t >= prev.t && t - prev.t < MIN_SAMPLE_SPAN)
		return null;	/* too close to the last reading to give a rate: wait for the next */

	if (!prev || prev.clock != clock || t < prev.t)
		this.samples = [];	/* first reading, or the daemon restarted */
	else {
		const dt = t - prev.t;
		const sample = { t: t, links: {}, total: { rx: 0, tx: 0 } };
		let n = 0;

		for (const name in counters) {
			const before = prev.counters[name];
			if (!before)
				continue;

			const drx = counters[name].rx - before.rx;
			const dtx = counters[name].tx - before.tx;
			if (drx < 0 || dtx < 0)
				continue;

			const rate = { rx: drx * 8 / dt, tx: dtx * 8 / dt };
			sample.links[name] = rate;
			sample.total.rx += rate.rx;
			sample.total.tx += rate.tx;
			n++;
		}

		if (n > 0)
			this.samples.push(sample);
	}

	this.prev = { clock: clock, t: t, counters: counters };

	while (this.samples.length && this.samples[0].t < t - this.window)
		this.samples.shift();

	const last = this.samples[this.samples.length - 1];
	return (last && last.t == t) ? last : null;
};

/* The current rate of a link: from the newest counter pair, else bondingd's own figure. */
RateTracker.prototype.current = function(name, dir, p) {
	const last = this.samples[this.samples.length - 1];

	if (this.prev && last && last.t == this.prev.t && last.links[name])
		return last.links[name][dir];

	const own = (dir == 'rx') ? p.rx_bps : p.tx_bps;
	return isNum(own) ? own : null;
};

/* A round upper bound for the graph's scale: 1, 2 or 5 times a power of ten. */
function niceCeil(v) {
	if (!(v > 0))
		return 1000;
	const mag = Math.pow(10, Math.floor(Math.log10(v)));
	for (const m of [ 1, 2, 5, 10 ])
		if (v <= m * mag)
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

function polylinePoints(points, tEnd, peak) {
	return points.map(pt => {
		const x = GRAPH_WIDTH - (tEnd - pt[0]) / GRAPH_WINDOW * GRAPH_WIDTH;
		const y = GRAPH_HEIGHT - pt[1] / peak * GRAPH_HEIGHT;
		return '%.1f,%.1f'.format(Math.max(0, x), Math.max(0, y));
	}).join(' ');
}

return view.extend({
	load: function() {
		return this.fetchStatus();
	},

	/* Never rejects: a daemon that is down is a state to show, not an error to throw. */
	fetchStatus: function() {
		return callStatus().then(function(st) {
			if (isObject(st) && isObject(st.paths))
				return { status: st, error: null };
			return { status: null, error: _('bondingd gave an empty reply') };
		}, function(err) {
			return { status: null, error: errorText(err) };
		});
	},

	render: function(res) {
		this.rates = new RateTracker(GRAPH_WINDOW);
		this.writable = (L.hasViewPermission() === true);

		this.messagesEl = E('div', { 'id': 'bonding-messages' });
		this.linksEl = E('div', { 'id': 'bonding-links' });
		this.graphsEl = E('div', { 'id': 'bonding-graphs' });
		this.serverEl = E('div', { 'id': 'bonding-server' });

		const node = E('div', { 'id': 'bonding-status' }, [
			E('h2', {}, [ _('Bonding status') ]),
			E('div', { 'class': 'cbi-map-descr' }, [
				_('What every link is doing, and why, refreshed every %d seconds.').format(POLL_INTERVAL)
			]),
			this.messagesEl,
			E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('Links') ]),
				this.linksEl
			]),
			E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('Throughput') ]),
				this.graphsEl
			]),
			E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('Server and proxy') ]),
				this.serverEl
			])
		]);

		if (this.writable)
			node.appendChild(E('div', { 'class': 'right' }, [
				E('button', {
					'class': 'cbi-button cbi-button-apply',
					'id': 'bonding-reload',
					'click': ui.createHandlerFn(this, 'handleReload')
				}, [ _('Reload configuration') ])
			]));

		this.update(res);
		poll.add(L.bind(this.poll, this), POLL_INTERVAL);

		return node;
	},

	poll: function() {
		return this.fetchStatus().then(L.bind(this.update, this));
	},

	update: function(res) {
		const st = res ? res.status : null;

		if (!st) {
			this.rates = new RateTracker(GRAPH_WINDOW);
			dom.content(this.messagesEl, E('div', { 'class': 'alert-message warning', 'id': 'bonding-down' }, [
				E('strong', {}, [ _('The bonding daemon is not running or cannot be reached.') ]),
				' ',
				_('Start it with "/etc/init.d/bonding start" and look at "logread -e bondingd". The configuration pages work without it.'),
				res && res.error ? E('div', { 'style': 'opacity:.8' }, [ _('Error: %s').format(res.error) ]) : ''
			]));
			dom.content(this.linksEl, E('em', {}, [ _('No link state without the daemon.') ]));
			dom.content(this.graphsEl, E('em', {}, [ _('No throughput without the daemon.') ]));
			dom.content(this.serverEl, E('em', {}, [ _('No server and proxy state without the daemon.') ]));
			return;
		}

		this.rates.update(st, Date.now());
		dom.content(this.messagesEl, this.renderMessages(st));
		dom.content(this.linksEl, this.renderLinks(st));
		dom.content(this.graphsEl, this.renderGraphs());
		dom.content(this.serverEl, this.renderServer(st));
	},

	renderMessages: function(st) {
		const msgs = [];

		if (st.enabled === false)
			msgs.push(E('div', { 'class': 'alert-message notice' }, [
				_('Bonding is disabled in the configuration: links are not probed and traffic is not bonded.')
			]));

		if (st.fail_open)
			msgs.push(E('div', { 'class': 'alert-message warning', 'id': 'bonding-fail-open' }, [
				_('Fail-open: the proxy is not working, so LAN traffic goes out directly, without bonding.')
			]));

		const problems = Array.isArray(st.config_problems) ? st.config_problems : [];
		if (problems.length)
			msgs.push(E('div', { 'class': 'alert-message warning', 'id': 'bonding-config-problems' }, [
				E('strong', {}, [ _('Problems in /etc/config/bonding:') ]),
				E('ul', {}, problems.map(p => E('li', {}, [ String(p) ])))
			]));

		const errors = Array.isArray(st.errors) ? st.errors : [];
		if (errors.length)
			msgs.push(E('div', { 'class': 'alert-message warning', 'id': 'bonding-errors' }, [
				E('strong', {}, [ _('Errors:') ]),
				E('ul', {}, errors.map(e => E('li', {}, [ String(e) ])))
			]));

		return msgs;
	},

	renderLinks: function(st) {
		const names = Object.keys(st.paths).sort();

		if (!names.length)
			return E('em', {}, [ _('No links: add one under Configuration, or let bondingd find the WAN interfaces of netifd.') ]);

		const now = Date.now() / 1000;
		const head = [
			_('Link'), _('State'), _('Reason'), _('RTT'), _('Jitter'), _('Loss'),
			_('Download'), _('Upload'), _('Subflows'), _('In state for')
		];
		const up = names.filter(n => isObject(st.paths[n]) && st.paths[n].state == 'up').length;
		const rows = [
			E('tr', { 'class': 'tr table-titles' }, head.map(h => E('th', { 'class': 'th' }, [ h ])))
		];

		if (this.writable)
			rows[0].appendChild(E('th', { 'class': 'th cbi-section-actions' }, [ _('Actions') ]));

		for (const name of names) {
			const p = isObject(st.paths[name]) ? st.paths[name] : {};
			const d = describeLink(p);
			const rx = this.rates.current(name, 'rx', p);
			const tx = this.rates.current(name, 'tx', p);
			const where = [ p.interface, p.device ].filter(v => v).join(' / ');

			const row = E('tr', { 'class': 'tr', 'data-link': name, 'data-state': d.state }, [
				E('td', { 'class': 'td', 'data-title': _('Link') }, [
					E('a', {
						'href': '#',
						'class': 'bonding-details',
						'title': _('Show the probe results of this link'),
						'click': ui.createHandlerFn(this, 'handleDetails', name)
					}, [ E('strong', {}, [ name ]) ]),
					where ? E('div', { 'style': 'opacity:.8' }, [ where ]) : ''
				]),
				E('td', { 'class': 'td', 'data-title': _('State') }, d.badges.map(badge)),
				E('td', { 'class': 'td bonding-reason', 'data-title': _('Reason'), 'style': 'min-width:14em' }, [ d.reason || '–' ]),
				E('td', { 'class': 'td', 'data-title': _('RTT') }, [ formatMs(p.rtt_ms) ]),
				E('td', { 'class': 'td', 'data-title': _('Jitter') }, [ formatMs(p.jitter_ms) ]),
				E('td', { 'class': 'td', 'data-title': _('Loss') }, [ formatPct(p.loss_pct) ]),
				E('td', { 'class': 'td bonding-rx', 'data-title': _('Download'), 'data-bps': rx }, [ formatRate(rx) ]),
				E('td', { 'class': 'td bonding-tx', 'data-title': _('Upload'), 'data-bps': tx }, [ formatRate(tx) ]),
				E('td', { 'class': 'td', 'data-title': _('Subflows') }, [ isNum(p.subflows) ? String(p.subflows) : '–' ]),
				E('td', { 'class': 'td', 'data-title': _('In state for') }, [
					isNum(p.since) ? formatDuration(now - p.since) : '–'
				])
			]);

			if (this.writable)
				row.appendChild(E('td', { 'class': 'td cbi-section-actions', 'style': 'white-space:nowrap' }, [
					E('button', {
						'class': 'cbi-button cbi-button-action bonding-probe',
						'title': _('Probe this link now and show the result'),
						'click': ui.createHandlerFn(this, 'handleProbe', name)
					}, [ _('Probe now') ]),
					' ',
					E('button', {
						'class': 'cbi-button %s bonding-backup'.format(p.forced_backup ? 'cbi-button-positive' : 'cbi-button-neutral'),
						'title': _('Until the next reload; set "Forced backup" under Configuration to keep it'),
						'click': ui.createHandlerFn(this, 'handleBackup', name, !p.forced_backup)
					}, [ p.forced_backup ? _('Clear backup') : _('Force backup') ])
				]));

			rows.push(row);
		}

		return [
			E('p', { 'id': 'bonding-summary' }, [
				_('%d of %d links up').format(up, names.length)
			]),
			E('table', { 'class': 'table', 'id': 'bonding-links-table' }, rows)
		];
	},

	renderGraph: function(dir, title) {
		const samples = this.rates.samples;
		const series = graphSeries(samples, dir);
		const tEnd = samples.length ? samples[samples.length - 1].t : 0;
		let peak = 0;

		for (const s of samples)
			peak = Math.max(peak, s.total[dir]);

		peak = niceCeil(peak);

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
				'points': polylinePoints(s.points, tEnd, peak)
			}));

		const legend = series.map(s => E('span', { 'style': 'margin-right:1em;white-space:nowrap' }, [
			E('span', { 'style': 'display:inline-block;width:1em;height:.3em;vertical-align:middle;background:%s'.format(s.color) }),
			' ', s.name, ': ',
			formatRate(s.points.length ? s.points[s.points.length - 1][1] : null)
		]));

		return E('div', { 'class': 'bonding-graph-box', 'style': 'margin-bottom:1em' }, [
			E('div', {}, [
				E('strong', {}, [ title ]), ' ',
				E('small', {}, [ _('scale 0 – %s, last %d minutes, one point every %d seconds').format(
					formatRate(peak), GRAPH_WINDOW / 60, POLL_INTERVAL) ])
			]),
			graph,
			E('div', {}, legend)
		]);
	},

	renderGraphs: function() {
		if (!this.rates.samples.length)
			return E('em', {}, [ _('Collecting data: the graph starts after two polls.') ]);

		return [
			this.renderGraph('rx', _('Download')),
			this.renderGraph('tx', _('Upload'))
		];
	},

	renderServer: function(st) {
		const servers = Array.isArray(st.servers) ? st.servers : [];
		const proxy = isObject(st.proxy) ? st.proxy : null;
		const active = isObject(st.active_server) ? st.active_server : null;
		const now = Date.now() / 1000;
		const rows = [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('Server') ]),
				E('th', { 'class': 'th' }, [ _('State') ]),
				E('th', { 'class': 'th' }, [ _('Reason') ]),
				E('th', { 'class': 'th' }, [ _('Address') ]),
				E('th', { 'class': 'th' }, [ _('Protocol') ]),
				E('th', { 'class': 'th' }, [ _('RTT') ]),
				E('th', { 'class': 'th' }, [ _('In state for') ])
			])
		];

		for (const s of servers) {
			/* An older bondingd gives no state: enabled or not is all there is. */
			const state = String(s.state || (s.enabled === false ? 'disabled' : 'standby'));
			const paths = isObject(s.paths) ? s.paths : {};
			const perPath = Object.keys(paths).sort().map(n => isObject(paths[n]) && paths[n].ok
				? '%s %s'.format(n, formatMs(paths[n].rtt_ms))
				: '%s %s'.format(n, (isObject(paths[n]) && paths[n].error) || _('no answer')));

			rows.push(E('tr', { 'class': 'tr', 'data-server': String(s.name), 'data-state': state }, [
				E('td', { 'class': 'td', 'data-title': _('Server') }, [
					E('strong', {}, [ String(s.name) ]),
					isNum(s.priority) ? E('div', { 'style': 'opacity:.8' }, [ _('priority %d').format(s.priority) ]) : ''
				]),
				E('td', { 'class': 'td', 'data-title': _('State') }, [ badge(state) ]),
				E('td', { 'class': 'td bonding-reason', 'data-title': _('Reason'), 'style': 'min-width:14em' }, [
					s.reason ? String(s.reason) : serverWords(state)
				]),
				E('td', { 'class': 'td', 'data-title': _('Address') }, [ '%s:%s'.format(s.address, s.port) ]),
				E('td', { 'class': 'td', 'data-title': _('Protocol') }, [ String(s.protocol || '–') ]),
				E('td', { 'class': 'td', 'data-title': _('RTT'), 'title': perPath.join(', ') }, [ formatMs(s.rtt_ms) ]),
				E('td', { 'class': 'td', 'data-title': _('In state for') }, [
					isNum(s.since) ? formatDuration(now - s.since) : '–'
				])
			]));
		}

		const out = [];

		if (active)
			out.push(E('p', { 'id': 'bonding-active-server', 'data-server': active.name || '' }, [
				E('strong', {}, [ _('Active server') ]), ' ',
				active.name ? String(active.name) : E('em', {}, [ _('none') ]),
				active.reason ? ': %s'.format(active.reason) : '',
				' ',
				E('small', {}, [ active.failback == 'stay'
					? _('(after a failover the server in use stays until it fails)')
					: _('(back to a preferred server once it has answered for %d s)').format(active.hold_s) ])
			]));

		out.push(servers.length
			? E('table', { 'class': 'table', 'id': 'bonding-servers' }, rows)
			: E('p', {}, [ E('em', {}, [ _('No aggregation server configured.') ]) ]));

		if (!proxy) {
			out.push(E('p', { 'id': 'bonding-proxy' }, [ E('em', {}, [ _('bondingd reports no proxy state.') ]) ]));
			return out;
		}

		const pstate = String(proxy.state || 'unknown');
		const style = { running: 'up', stopped: 'disabled', disabled: 'disabled', failed: 'down' }[pstate];

		out.push(E('p', { 'id': 'bonding-proxy', 'data-state': pstate }, [
			E('strong', {}, [ _('Proxy') ]), ' ',
			String(proxy.backend || '–'), ' ',
			proxy.server ? _('to server %s').format(proxy.server) : '', ' ',
			E('span', {
				'class': 'bonding-badge',
				'style': (STATE_STYLE[style] || 'background:#999;color:#fff') + ';border-radius:3px;padding:1px 6px'
			}, [ {
				running: _('running'), stopped: _('stopped'), failed: _('failed'), disabled: _('disabled')
			}[pstate] || pstate ]),
			' ',
			isNum(proxy.pid) ? _('PID %d').format(proxy.pid) : '',
			' ',
			isNum(proxy.restarts) && proxy.restarts > 0 ? _('%d restarts').format(proxy.restarts) : '',
			' ',
			isNum(proxy.since) ? _('for %s').format(formatDuration(Date.now() / 1000 - proxy.since)) : '',
			proxy.error ? E('div', { 'class': 'alert-message warning' }, [ String(proxy.error) ]) : ''
		]));

		return out;
	},

	notifyError: function(what, err) {
		ui.addNotification(null, E('p', {}, [
			_('%s failed: %s').format(what, errorText(err))
		]), 'error');
	},

	handleProbe: function(name) {
		return callProbe(name).then(L.bind(function() {
			return this.poll();
		}, this)).catch(L.bind(function(err) {
			this.notifyError(_('Probing %s').format(name), err);
		}, this));
	},

	handleBackup: function(name, backup) {
		return callSetPath(name, backup).then(L.bind(function() {
			return this.poll();
		}, this)).catch(L.bind(function(err) {
			this.notifyError(_('Changing the backup flag of %s').format(name), err);
		}, this));
	},

	handleDetails: function(name, ev) {
		if (ev && ev.preventDefault)
			ev.preventDefault();

		return callPath(name).then(function(p) {
			const targets = Array.isArray(p.targets) ? p.targets : [];
			const windowText = Array.isArray(p.window)
				? p.window.map(w => (w == 'ok') ? '✓' : '✗').join('') : '–';

			ui.showModal(_('Link %s').format(name), [
				E('p', {}, [ _('Last rounds (oldest first): %s').format(windowText) ]),
				E('table', { 'class': 'table' }, [
					E('tr', { 'class': 'tr table-titles' }, [
						E('th', { 'class': 'th' }, [ _('Target') ]),
						E('th', { 'class': 'th' }, [ _('Sent') ]),
						E('th', { 'class': 'th' }, [ _('Received') ]),
						E('th', { 'class': 'th' }, [ _('Loss') ]),
						E('th', { 'class': 'th' }, [ _('RTT') ])
					])
				].concat(targets.map(t => E('tr', { 'class': 'tr' }, [
					E('td', { 'class': 'td' }, [ String(t.target) ]),
					E('td', { 'class': 'td' }, [ String(t.sent) ]),
					E('td', { 'class': 'td' }, [ String(t.received) ]),
					E('td', { 'class': 'td' }, [ formatPct(t.loss_pct) ]),
					E('td', { 'class': 'td' }, [ formatMs(t.rtt_ms) ])
				])))),
				E('div', { 'class': 'right' }, [
					E('button', { 'class': 'cbi-button', 'click': ui.hideModal }, [ _('Dismiss') ])
				])
			]);
		}).catch(L.bind(function(err) {
			this.notifyError(_('Reading link %s').format(name), err);
		}, this));
	},

	handleReload: function() {
		return callReload().then(L.bind(function(res) {
			const problems = Array.isArray(res.problems) ? res.problems : [];
			ui.addNotification(null, [
				E('p', {}, [ res.ok ? _('bondingd reloaded its configuration.') : _('bondingd kept its last good configuration.') ]),
				problems.length ? E('ul', {}, problems.map(p => E('li', {}, [ String(p) ]))) : ''
			], res.ok ? 'info' : 'warning');
			return this.poll();
		}, this)).catch(L.bind(function(err) {
			this.notifyError(_('Reloading'), err);
		}, this));
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
