'use strict';
/* The status page's parts under bonding/, each on its own, loaded as 'require bonding.x' loads them. */
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const NOW_MS = 1763800000000;

function load(name, modules) {
	return h.loadModule(name, { now: NOW_MS, L: h.makeL(true), modules: Object.assign({ ui: h.makeUi() }, modules) });
}

test('format: rates, times, percentages and durations in words', () => {
	const fmt = load('bonding.format');
	const cases = [
		[ 'formatRate', null, '–' ], [ 'formatRate', NaN, '–' ], [ 'formatRate', 999.4, '999 bit/s' ],
		[ 'formatRate', 1500, '1.5 kbit/s' ], [ 'formatRate', 2.5e6, '2.5 Mbit/s' ], [ 'formatRate', 1.234e9, '1.23 Gbit/s' ],
		[ 'formatMs', 12.34, '12.3 ms' ], [ 'formatMs', undefined, '–' ],
		[ 'formatPct', 5, '5.0 %' ], [ 'formatPct', '5', '–' ],
		[ 'formatDuration', -1, '–' ], [ 'formatDuration', 59.9, '59s' ], [ 'formatDuration', 61, '1m 1s' ],
		[ 'formatDuration', 3 * 3600 + 120, '3h 2m' ], [ 'formatDuration', 2 * 86400 + 5 * 3600, '2d 5h' ],
		[ 'formatSince', NOW_MS / 1000 - 90, '1m 30s' ], [ 'formatSince', null, '–' ],
		[ 'errorText', new Error('Access denied\n    at x (y.js:1)'), 'Access denied' ], [ 'errorText', 'plain', 'plain' ]
	];
	for (const [ fn, arg, want ] of cases)
		assert.equal(fmt[fn](arg), want, `${fn}(${String(arg)})`);
	assert.equal(fmt.badge('degraded').attrs['data-state'], 'degraded');
	assert.match(fmt.badge('weird').attrs.style, /#999/, 'an unknown state is grey');
	assert.equal(h.text(fmt.badge('weird')), 'weird');
});

test('rates: a state machine over readings of the byte counters', () => {
	const { RateTracker } = load('bonding.rates');
	const st = (t, rx, tx, extra) => Object.assign({ uptime: t, paths: { wan: { rx_bytes: rx, tx_bytes: tx } } }, extra);
	/* [ reading, samples after it, rx rate of the sample it completed (or null) ] */
	const steps = [
		[ st(100, 0, 0), 0, null ],		/* first reading: nothing to compare */
		[ st(102, 1000, 500), 1, 4000 ],	/* 1000 bytes in 2 s */
		[ st(102.5, 2000, 600), 1, null ],	/* under a second later: waits */
		[ st(104, 2000, 700), 2, 4000 ],	/* measured from 102, not 102.5 */
		[ st(106, 1000, 800), 2, null ],	/* counter went backwards: no rate for that pair */
		[ st(50, 1000, 800), 0, null ],		/* the daemon restarted: history goes */
		[ st(52, 1250, 800, { counters_at: 9 }), 0, null ],	/* another clock: starts again */
		[ st(54, 1500, 800, { counters_at: 11 }), 1, 1000 ]
	];
	const r = new RateTracker(300);
	for (const [ i, [ reading, samples, rx ] ] of steps.entries()) {
		const got = r.update(reading, NOW_MS);
		assert.equal(r.samples.length, samples, `step ${i}: samples`);
		assert.equal(got ? got.links.wan.rx : null, rx, `step ${i}: rate`);
	}
	assert.equal(r.current('wan', 'rx', {}), 1000);
	assert.equal(r.current('lte', 'tx', { tx_bps: 77 }), 77, 'bondingd\'s own figure without a pair');
	const old = new RateTracker(10);
	for (let t = 0; t <= 40; t += 2)
		old.update(st(t, t * 100, 0), NOW_MS);
	assert.ok(old.samples.every(s => s.t >= 30), 'only the window is kept');
});

test('links: what each state means in badges and words', () => {
	const links = load('bonding.links');
	const cases = [
		[ { state: 'up' }, [ 'up' ], '' ],
		[ { state: 'up', backup: true }, [ 'backup' ], 'Backup: carries traffic only when no other link is up.' ],
		[ { state: 'up', backup: true, forced_backup: true }, [ 'backup' ], /^Forced backup/ ],
		[ { state: 'degraded' }, [ 'degraded', 'backup' ], /far worse.*Used as backup/ ],
		[ { state: 'degraded', backup: false, reason: 'loss 30%' }, [ 'degraded' ], 'loss 30% Used as backup until it recovers.' ],
		[ { state: 'down' }, [ 'down' ], 'Down: bondingd gave no reason.' ],
		[ { state: 'down', reason: 'no carrier', error: 'EIO' }, [ 'down' ], 'no carrier EIO' ],
		[ { state: 'disabled', enabled: false }, [ 'disabled' ], /configuration or at run time/ ],
		[ { state: 'disabled' }, [ 'disabled' ], /^Bonding is disabled/ ],
		[ {}, [ 'unknown' ], 'bondingd reported an unknown state.' ]
	];
	for (const [ p, badges, reason ] of cases) {
		const d = links.describeLink(p);
		assert.deepEqual([ ...d.badges ], badges, JSON.stringify(p));
		if (reason instanceof RegExp)
			assert.match(d.reason, reason, JSON.stringify(p));
		else
			assert.equal(d.reason, reason, JSON.stringify(p));
	}
});

test('graph: a wait message without samples, two SVGs with them', () => {
	const graph = load('bonding.graph', { });
	const opts = { window: 300, interval: 2 };
	assert.match(h.text(graph.render([], opts)), /Collecting data/);
	const samples = [
		{ t: 10, links: { wan: { rx: 1000, tx: 10 } }, total: { rx: 1000, tx: 10 } },
		{ t: 12, links: { wan: { rx: 3000, tx: 20 }, lte: { rx: 1000, tx: 0 } }, total: { rx: 4000, tx: 20 } }
	];
	const box = h.E('div', {}, graph.render(samples, opts));
	const svgs = box.byTag('svg');
	assert.deepEqual(svgs.map(s => s.attrs['data-direction']), [ 'rx', 'tx' ]);
	const lines = svgs[0].byTag('polyline').map(l => [ l.attrs['data-series'], l.attrs.points ]);
	assert.deepEqual(lines, [
		[ 'lte', '600.0,120.0' ], [ 'wan', '596.0,120.0 600.0,40.0' ], [ 'Total', '596.0,120.0 600.0,0.0' ]
	], 'scale 0 – 4 kbit/s over 160 px; 2 s of 300 s is 4 px');
	assert.match(h.text(box), /scale 0 – 4.0 kbit\/s, last 5 minutes, one point every 2 seconds/);
	assert.match(h.text(h.E('div', {}, graph.render(samples, { window: 300, interval: 1 }))), /last 5 minutes, one point a second/);
});

test('graph: the scale is at most a quarter above the peak (no 200 Mbit/s for 100)', () => {
	const graph = load('bonding.graph', { });
	const scale = total => {
		const samples = [ 1, 2 ].map(t => ({ t: t * 2, links: { wan: { rx: total, tx: total } }, total: { rx: total, tx: total } }));
		return h.text(h.E('div', {}, graph.render(samples, { window: 300, interval: 2 })))
			.match(/Download scale 0 – (\S+ \S+),/)[1];
	};
	assert.equal(scale(100.4e6), '125.0 Mbit/s');
	assert.equal(scale(100e6), '100.0 Mbit/s');
	assert.equal(scale(101e3), '125.0 kbit/s');
	assert.equal(scale(2.1e6), '2.5 Mbit/s');
	assert.equal(scale(7e6), '8.0 Mbit/s');
	assert.equal(scale(0), '1.0 kbit/s');
});

test('servers: the proxy line for every proxy state', () => {
	const servers = load('bonding.servers');
	const proxy = p => servers.render({ proxy: p }).find(n => n.attrs.id === 'bonding-proxy');
	assert.match(h.text(proxy(undefined)), /no proxy state/);
	const cases = [ [ 'running', 'running', /#2e7d32/ ], [ 'failed', 'failed', /#c62828/ ], [ 'odd', 'odd', /#999/ ] ];
	for (const [ state, words, style ] of cases) {
		const p = proxy({ state: state, backend: 'xray', pid: 7, restarts: 2 });
		assert.equal(p.attrs['data-state'], state);
		assert.match(h.text(p), new RegExp(`xray ${words} PID 7 2 restarts`));
		assert.match(p.byClass('bonding-badge')[0].attrs.style, style);
	}
});

test('rpc: one declaration per bondingd method, all on the bonding object', () => {
	const rpc = h.makeRpc(() => ({}));
	const decls = load('bonding.rpc', { rpc });
	assert.deepEqual(rpc.declared.map(d => d.method), [ 'status', 'path', 'set_path', 'probe', 'reload', 'set_key' ]);
	assert.ok(rpc.declared.every(d => d.object === 'bonding'));
	assert.deepEqual(Array.from(rpc.declared.find(d => d.method === 'set_key').params), [ 'server', 'key', 'cipher' ]);
	assert.equal(rpc.declared.find(d => d.method === 'status').reject, undefined, 'status resolves even on ubus errors');
	assert.deepEqual(Object.keys(decls).sort(), [ 'path', 'probe', 'reload', 'setKey', 'setPath', 'status' ]);
});

test('config sections: each is a module of its own that adds its section to a form.Map', () => {
	const f = h.makeForm(h.makeUci({}));
	const modules = { form: f.form, rpc: h.makeRpc(() => ({})), 'tools.widgets': f.widgets };
	const m = new f.form.Map('bonding', 'Bonding');
	const made = [ [ 'globals', [] ], [ 'servers', [ true ] ], [ 'links', [] ], [ 'usb', [] ] ]
		.map(([ name, args ]) => { load(`bonding.config.${name}`, modules).section(m, ...args); return m.children.at(-1).sectiontype; });
	assert.deepEqual(made, [ 'globals', 'server', 'path', 'usb' ]);

	/* options.intOptions: a row is [ option, title, description, min, max, default ] */
	const { intOptions } = load('bonding.config.options', modules);
	const s = m.section(f.form.NamedSection, 'x', 'x');
	s.tab('t', 'T');
	const o = intOptions(s, 't', [ [ 'n', 'N', 'd', 2, 9, '5' ] ]).n;
	assert.equal(o.datatype, 'and(uinteger,range(2,9))');
	assert.equal(o.placeholder, '5');
});
