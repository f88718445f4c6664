'use strict';
/* The status view (view/bonding/status.js) rendered from fixture `status` replies. */
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const NOW_MS = 1763800000000;	/* the fixtures' `since` values are shortly before this */

/* A status page with stubbed LuCI; `replies` answers rpc calls by method name. */
async function openStatus(opts) {
	opts = Object.assign({ writable: true }, opts);
	const replies = Object.assign({ status: () => h.fixture('status.json') }, opts.replies);
	const rpc = h.makeRpc((decl, args) => {
		const fn = replies[decl.method];
		if (!fn)
			throw new Error(`unexpected call ${decl.object}.${decl.method}`);
		return fn(args);
	});
	const poll = h.makePoll();
	const ui = h.makeUi();
	const loaded = h.loadView('view/bonding/status.js', {
		now: NOW_MS,
		L: h.makeL(opts.writable),
		modules: { view: h.viewModule, dom: h.dom, poll, rpc, ui }
	});
	const view = h.instantiate(loaded.result);
	const node = view.render(await view.load());
	return { view, node, rpc, poll, ui, replies, state: loaded.state };
}

function row(node, link) {
	return node.find(n => n.tag === 'tr' && n.attrs['data-link'] === link);
}

function badges(tr) {
	return tr.byClass('bonding-badge').map(b => b.attrs['data-state']);
}

function reason(tr) {
	return h.text(tr.byClass('bonding-reason')[0]);
}

/* fixture status with every counter advanced: deltas in bytes per link, time in seconds */
function advanced(base, dt, deltas) {
	const st = JSON.parse(JSON.stringify(base));
	st.uptime = base.uptime + dt;
	if (typeof(base.counters_at) == 'number')
		st.counters_at = base.counters_at + dt;	/* bondingd's clock of the counters */
	for (const name in deltas) {
		st.paths[name].rx_bytes = base.paths[name].rx_bytes + deltas[name][0];
		st.paths[name].tx_bytes = base.paths[name].tx_bytes + deltas[name][1];
	}
	return st;
}

async function pollOnce(page, status) {
	page.replies.status = () => status;
	assert.equal(page.poll.polls.length, 1);
	await page.poll.polls[0].fn();
}

test('polls bonding.status every second with poll.add, as often as bondingd refreshes it', async () => {
	const page = await openStatus();
	assert.equal(page.poll.polls.length, 1);
	assert.equal(page.poll.polls[0].interval, 1);
	const before = page.rpc.calls.filter(c => c.method === 'status').length;
	await page.poll.polls[0].fn();
	assert.equal(page.rpc.calls.filter(c => c.method === 'status').length, before + 1);
});

test('a down link shows its state and the reason in words', async () => {
	const { node } = await openStatus();
	const tr = row(node, 'dsl');
	assert.ok(tr, 'a row for the down link');
	assert.deepEqual(badges(tr), [ 'down' ]);
	assert.match(reason(tr), /3 of the last 5 rounds failed/);
});

test('a down link shows no last RTT or jitter beside its 100 % loss', async () => {
	/* bondingd keeps a dead link's last smoothed RTT in its reply */
	const st = h.fixture('status.json');
	Object.assign(st.paths.dsl, { rtt_ms: 42.5, jitter_ms: 3.1, loss_pct: 100.0 });
	const { node } = await openStatus({ replies: { status: () => st } });
	const cells = Object.fromEntries(row(node, 'dsl').byTag('td').map(td => [ td.attrs['data-title'], h.text(td) ]));
	assert.equal(cells.RTT, '–');
	assert.equal(cells.Jitter, '–');
	assert.equal(cells.Loss, '100.0 %');
	const wan = Object.fromEntries(row(node, 'wan').byTag('td').map(td => [ td.attrs['data-title'], h.text(td) ]));
	assert.equal(wan.RTT, '21.3 ms', 'a live link keeps its RTT');
});

test('a down link without a reason from bondingd still says why in words', async () => {
	const st = h.fixture('status.json');
	st.paths.dsl.reason = '';
	const { node } = await openStatus({ replies: { status: () => st } });
	assert.match(reason(row(node, 'dsl')), /no reason/i);
});

test('a degraded link shows degraded and backup, with its reason', async () => {
	const { node } = await openStatus();
	const tr = row(node, 'wwan');
	assert.deepEqual(badges(tr), [ 'degraded', 'backup' ]);
	assert.match(reason(tr), /loss 25% over the last 20 rounds/);
	assert.match(reason(tr), /backup/);
});

test('a forced backup link shows backup; a disabled link says it is disabled; an up link has no reason', async () => {
	const { node } = await openStatus();
	assert.deepEqual(badges(row(node, 'lte')), [ 'backup' ]);
	assert.match(reason(row(node, 'lte')), /Forced backup/);
	assert.deepEqual(badges(row(node, 'cable')), [ 'disabled' ]);
	assert.match(reason(row(node, 'cable')), /Disabled/);
	assert.deepEqual(badges(row(node, 'wan')), [ 'up' ]);
	assert.equal(reason(row(node, 'wan')), '–');
});

test('RTT, jitter, loss, subflows and time in state come from the reply', async () => {
	const { node } = await openStatus();
	const cells = row(node, 'wan').byTag('td').map(h.text);
	assert.ok(cells.includes('21.3 ms'), cells.join(' | '));
	assert.ok(cells.includes('0.4 ms'));
	assert.ok(cells.includes('0.0 %'));
	assert.ok(cells.includes('2'));	/* subflows */
	assert.ok(cells.includes('2m 5s'), 'since 125 s before now');
	const dsl = row(node, 'dsl').byTag('td').map(h.text);
	assert.ok(dsl.includes('–'), 'unknown RTT is a dash');
	assert.ok(row(node, 'lte').byTag('td').map(h.text).includes('1h 0m'));
	assert.match(h.text(node.byId('bonding-summary')), /2 of 5 links up/);
});

function serverRow(node, name) {
	return node.find(n => n.tag === 'tr' && n.attrs['data-server'] === name);
}

test('servers, proxy and config problems are shown', async () => {
	const { node } = await openStatus();
	assert.match(h.text(serverRow(node, 'vps1')), /vps1.*203\.0\.113\.10:65101.*shadowsocks/);
	const proxy = node.byId('bonding-proxy');
	assert.equal(proxy.attrs['data-state'], 'running');
	assert.match(h.text(proxy), /xray.*to server vps2.*running.*PID 1234/);
	assert.match(h.text(node.byId('bonding-config-problems')), /bonding\.cable\.foo/);
});

test('which server is active and why; every server with its state, reason and RTT', async () => {
	const { node } = await openStatus();
	const act = node.byId('bonding-active-server');
	assert.equal(act.attrs['data-server'], 'vps2');
	assert.match(h.text(act), /Active server vps2: vps1 stopped answering/);
	assert.match(h.text(act), /answered for 60 s/);
	const down = serverRow(node, 'vps1');
	assert.equal(down.attrs['data-state'], 'down');
	assert.deepEqual(badges(down), [ 'down' ]);
	assert.match(reason(down), /wan connection refused, wwan connection refused \(3 rounds in a row\)/);
	const up = serverRow(node, 'vps2');
	assert.deepEqual(badges(up), [ 'active' ]);
	const cells = up.byTag('td').map(h.text);
	assert.ok(cells.includes('31.2 ms'), cells.join(' | '));
	assert.ok(cells.includes('29s'), 'in state since 29 s before now');
	assert.ok(cells.includes('priority 20') || cells.some(c => /priority 20/.test(c)));
	const rtt = up.byTag('td').find(td => td.attrs['data-title'] === 'RTT');
	assert.equal(rtt.attrs.title, 'wan 31.2 ms, wwan 190.4 ms');
	assert.deepEqual(badges(serverRow(node, 'spare')), [ 'disabled' ]);
});

test('failback stay is said; an older bondingd without server states still renders', async () => {
	const st = h.fixture('status.json');
	st.active_server.failback = 'stay';
	let page = await openStatus({ replies: { status: () => st } });
	assert.match(h.text(page.node.byId('bonding-active-server')), /stays until it fails/);

	const old = h.fixture('status.json');
	delete old.active_server;
	old.servers = [ { name: 'vps1', address: '203.0.113.10', port: 65101, protocol: 'shadowsocks', enabled: true } ];
	page = await openStatus({ replies: { status: () => old } });
	assert.equal(page.node.byId('bonding-active-server'), null);
	const row = serverRow(page.node, 'vps1');
	assert.deepEqual(badges(row), [ 'standby' ]);
	assert.match(reason(row), /Ready to take over/);
});

test('daemon down (rpc rejected): a clear message, no exception, then recovery', async () => {
	const down = () => { throw new Error('RPC call to bonding/status failed with error -32000: Object not found at ClassConstructor.handleCallReply (http://192.0.2.1/luci-static/resources/rpc.js:82:7)'); };
	const page = await openStatus({ replies: { status: down } });
	const msg = page.node.byId('bonding-down');
	assert.ok(msg, 'the daemon-down message');
	assert.match(h.text(msg), /not running/);
	assert.match(h.text(msg), /Object not found$/, 'the error without LuCI\'s call stack');
	assert.equal(page.node.byId('bonding-links-table'), null);

	assert.equal(page.node.byId('bonding-reload').disabled, true, 'no reload without the daemon');

	await pollOnce(page, h.fixture('status.json'));
	assert.equal(page.node.byId('bonding-down'), null, 'message gone once bondingd answers');
	assert.ok(page.node.byId('bonding-links-table'));
	assert.equal(page.node.byId('bonding-reload').disabled, false, 'reload offered again');

	page.replies.status = down;
	await page.poll.polls[0].fn();
	assert.ok(page.node.byId('bonding-down'), 'message back when it stops again');
});

test('daemon down (empty or non-object reply): the same message, no exception', async () => {
	for (const reply of [ {}, null, h.ubusStatus(4), [], 'garbage' ]) {
		const page = await openStatus({ replies: { status: () => reply } });
		assert.ok(page.node.byId('bonding-down'), `message for ${JSON.stringify(reply)}`);
		assert.equal(page.node.byId('bonding-links-table'), null);
	}
});

test('rates come from rx_bytes/tx_bytes pairs and bondingd\'s clock', async () => {
	const page = await openStatus();
	const base = h.fixture('status.json');
	/* 2 s later by bondingd's clock; the browser's clock jumps 10 s (a slow reply) */
	page.state.now = NOW_MS + 10000;
	await pollOnce(page, advanced(base, 2, {
		wan: [ 250000, 125000 ],	/* 1 Mbit/s down, 500 kbit/s up */
		wwan: [ 25000, 1000 ],		/* 100 kbit/s, 4 kbit/s */
		dsl: [ 0, 0 ]
	}));
	const rx = tr => Number(tr.byClass('bonding-rx')[0].attrs['data-bps']);
	const tx = tr => Number(tr.byClass('bonding-tx')[0].attrs['data-bps']);
	assert.equal(rx(row(page.node, 'wan')), 1000000);
	assert.equal(tx(row(page.node, 'wan')), 500000);
	assert.equal(h.text(row(page.node, 'wan').byClass('bonding-rx')[0]), '1.0 Mbit/s');
	assert.equal(rx(row(page.node, 'wwan')), 100000);
	assert.equal(tx(row(page.node, 'wwan')), 4000);
	assert.equal(rx(row(page.node, 'dsl')), 0);
	/* no counters (null): bondingd's own rate is shown */
	assert.equal(rx(row(page.node, 'cable')), 0);

	/* a counter that went backwards gives no rate from the pair: bondingd's figure instead */
	const reset = advanced(base, 4, { wan: [ -999000, 250000 ], wwan: [ 50000, 2000 ] });
	reset.paths.wan.rx_bps = 1234;
	reset.paths.wan.tx_bps = 4321;
	await pollOnce(page, reset);
	assert.equal(rx(row(page.node, 'wan')), 1234);
	assert.equal(tx(row(page.node, 'wan')), 4321);
	assert.equal(rx(row(page.node, 'wwan')), 100000);

	/* a daemon restart (uptime went back) starts over rather than showing a negative time */
	const restarted = advanced(base, -90, {});
	await pollOnce(page, restarted);
	assert.equal(rx(row(page.node, 'wwan')), restarted.paths.wwan.rx_bps);
});

test('rates use the counters_at clock when bondingd gives it', async () => {
	const page = await openStatus();
	const base = h.fixture('status.json');
	const a = advanced(base, 0, {});
	a.counters_at = 99.5;
	await pollOnce(page, a);
	const b = advanced(base, 2, { wan: [ 100000, 0 ] });
	b.counters_at = 100.5;	/* 1 s between the two counter readings, not 2 */
	await pollOnce(page, b);
	assert.equal(Number(row(page.node, 'wan').byClass('bonding-rx')[0].attrs['data-bps']), 800000);
});

test('a reading less than a second after the last waits for the next', async () => {
	const page = await openStatus();
	const base = h.fixture('status.json');
	const rx = () => Number(row(page.node, 'wan').byClass('bonding-rx')[0].attrs['data-bps']);
	await pollOnce(page, advanced(base, 2, { wan: [ 250000, 0 ] }));
	assert.equal(rx(), 1000000);
	/* 0.3 s later (a poll right after "Probe now"): a burst that must not become a rate */
	await pollOnce(page, advanced(base, 2.3, { wan: [ 250000 + 100000, 0 ] }));
	assert.equal(rx(), 1000000, 'still the last full sample');
	/* 2 s after the last sample: the rate over those 2 s, burst included */
	await pollOnce(page, advanced(base, 4, { wan: [ 750000, 0 ] }));
	assert.equal(rx(), 2000000);
	const total = page.node.byId('bonding-graphs').byTag('svg')[0].find(n => n.attrs['data-series'] === 'Total');
	assert.equal(total.attrs.points.split(' ').length, 2, 'two samples, not three');
});

test('the graph has one polyline point per sample, per link and in total', async () => {
	const page = await openStatus();
	const base = h.fixture('status.json');
	assert.equal(page.node.byId('bonding-graphs').byTag('svg').length, 0, 'no graph from one sample');

	const polls = 7;
	for (let i = 1; i <= polls; i++)
		await pollOnce(page, advanced(base, 2 * i, {
			wan: [ 250000 * i, 125000 * i ], wwan: [ 25000 * i, 1000 * i ], dsl: [ 0, 0 ], lte: [ 0, 0 ]
		}));

	const svgs = page.node.byId('bonding-graphs').byTag('svg');
	assert.deepEqual(svgs.map(s => s.attrs['data-direction']), [ 'rx', 'tx' ]);
	for (const svg of svgs) {
		assert.equal(svg.ns, 'http://www.w3.org/2000/svg', 'created in the SVG namespace');
		const lines = svg.byTag('polyline');
		/* links with counter pairs: dsl, lte, wan, wwan (cable has none), then the total */
		assert.deepEqual(lines.map(l => l.attrs['data-series']), [ 'dsl', 'lte', 'wan', 'wwan', 'Total' ]);
		for (const l of lines) {
			const pts = l.attrs.points.split(' ').map(p => p.split(',').map(Number));
			assert.equal(pts.length, polls, `${l.attrs['data-series']}: one point per sample`);
			for (let i = 1; i < pts.length; i++)
				assert.ok(pts[i][0] > pts[i - 1][0], 'x grows with time');
			assert.equal(pts[pts.length - 1][0], 600, 'the newest sample at the right edge');
		}
	}

	/* download total is 1.1 Mbit/s in every sample: scale 1.25 Mbit/s, y = 160 - 1.1/1.25 * 160 */
	const total = svgs[0].find(n => n.attrs['data-series'] === 'Total');
	for (const p of total.attrs.points.split(' '))
		assert.equal(Number(p.split(',')[1]), 19.2);
	const wan = svgs[0].find(n => n.attrs['data-series'] === 'wan');
	for (const p of wan.attrs.points.split(' '))
		assert.equal(Number(p.split(',')[1]), 32, '1 Mbit/s on a 1.25 Mbit/s scale');
});

test('the graph keeps the last five minutes only', async () => {
	const page = await openStatus();
	const base = h.fixture('status.json');
	for (let i = 1; i <= 160; i++)
		await pollOnce(page, advanced(base, 2 * i, { wan: [ 1000 * i, 1000 * i ] }));
	const total = page.node.byId('bonding-graphs').byTag('svg')[0].find(n => n.attrs['data-series'] === 'Total');
	const pts = total.attrs.points.split(' ').map(p => p.split(',').map(Number));
	/* samples at t = 102 … 420, kept when t >= 420 - 300: 120, 122, … 420 */
	assert.equal(pts.length, 151);
	assert.equal(pts[0][0], 0);
});

test('write access: probe, force and clear backup call bondingd, then refresh', async () => {
	const calls = [];
	const page = await openStatus({ replies: {
		set_path: args => { calls.push([ 'set_path', ...args ]); return { name: args[0], enabled: true, backup: args[1] }; },
		probe: args => { calls.push([ 'probe', ...args ]); return h.fixture('path-wan.json'); }
	} });
	const statusCalls = () => page.rpc.calls.filter(c => c.method === 'status').length;

	const wanButtons = row(page.node, 'wan').byTag('button');
	assert.deepEqual(wanButtons.map(h.text), [ 'Probe now', 'Force backup' ]);
	const lteButtons = row(page.node, 'lte').byTag('button');
	assert.equal(h.text(lteButtons[1]), 'Clear backup');

	let before = statusCalls();
	await wanButtons[0].listeners.click({});
	assert.deepEqual(calls.pop(), [ 'probe', 'wan' ]);
	assert.equal(statusCalls(), before + 1, 'status polled again after the probe');
	/* and says what the probe found, target by target */
	assert.equal(page.ui.notifications.length, 1);
	assert.equal(page.ui.notifications[0].cls, 'info');
	const said = h.text(page.ui.notifications[0].body);
	assert.match(said, /Probe of wan: up/);
	assert.match(said, /203\.0\.113\.10: 21\.0 ms/);
	assert.match(said, /2001:db8:203::10: no answer \(network unreachable\)/);
	page.ui.notifications.length = 0;

	await wanButtons[1].listeners.click({});
	assert.deepEqual(calls.pop(), [ 'set_path', 'wan', true ]);
	await lteButtons[1].listeners.click({});
	assert.deepEqual(calls.pop(), [ 'set_path', 'lte', false ]);
	assert.equal(page.ui.notifications.length, 0);
	assert.ok(page.node.byId('bonding-reload'));
});

test('read-only access: no buttons that change anything, details still there', async () => {
	const page = await openStatus({ writable: false, replies: { path: () => h.fixture('path-wan.json') } });
	assert.equal(page.node.byTag('button').length, 0);
	assert.equal(page.node.byId('bonding-reload'), null);
	await row(page.node, 'wan').byClass('bonding-details')[0].listeners.click({ preventDefault() {} });
	assert.equal(page.ui.modals.length, 1);
});

test('a failing action is reported, not thrown', async () => {
	const page = await openStatus({ replies: { set_path: () => h.ubusStatus(4) } });
	await row(page.node, 'wan').byTag('button')[1].listeners.click({});
	assert.equal(page.ui.notifications.length, 1);
	assert.equal(page.ui.notifications[0].cls, 'error');
	assert.match(h.text(h.E('div', {}, page.ui.notifications[0].body)), /wan.*failed.*ubus code 4/);
});

test('details show the per-target probe results of bonding.path', async () => {
	const page = await openStatus({ replies: { path: () => h.fixture('path-wan.json') } });
	let prevented = false;
	await row(page.node, 'wan').byClass('bonding-details')[0].listeners.click({ preventDefault() { prevented = true; } });
	assert.ok(prevented, 'the link does not navigate');
	assert.deepEqual(page.rpc.calls.filter(c => c.method === 'path').map(c => c.args), [ [ 'wan' ] ]);
	const modal = h.E('div', {}, page.ui.modals[0].body);
	assert.match(h.text(modal), /✓✓✗✓✓/);
	const target = modal.find(n => n.tag === 'tr' && h.text(n).startsWith('203.0.113.10'));
	assert.deepEqual(target.byTag('td').map(h.text),
		[ '203.0.113.10', '600', '598', '0.3 %', '21.0 ms', '0.1 s ago', '' ]);
	/* a target without replies: no RTT, its error shown */
	const v6 = modal.find(n => n.tag === 'tr' && h.text(n).startsWith('2001:db8:203::10'));
	assert.deepEqual(v6.byTag('td').map(h.text),
		[ '2001:db8:203::10', '14', '0', '100.0 %', '–', '–', 'network unreachable' ]);
	assert.doesNotMatch(h.text(modal), /undefined/);
	assert.match(h.text(modal), /IPv4: up, 21 rounds/);
	assert.match(h.text(modal), /IPv6: up, \d+ rounds/);
	assert.match(h.text(modal), /Probe timeout: 250\.0 ms/);
});

test('reload reports the problems bondingd found', async () => {
	const page = await openStatus({ replies: { reload: () => h.fixture('reload.json') } });
	await page.node.byId('bonding-reload').listeners.click({});
	assert.equal(page.ui.notifications.length, 1);
	assert.equal(page.ui.notifications[0].cls, 'warning');
	assert.match(h.text(h.E('div', {}, page.ui.notifications[0].body)), /kept its last good.*wan3\.backup='maybe'/);
});

test('the view only calls methods it declared, on the bonding object', async () => {
	const page = await openStatus();
	const declared = page.rpc.declared.map(d => `${d.object}.${d.method}`).sort();
	/* bonding/rpc.js declares them all; set_key is the configuration view's */
	assert.deepEqual(declared, [ 'bonding.path', 'bonding.probe', 'bonding.reload', 'bonding.set_key', 'bonding.set_path', 'bonding.status' ]);
});
