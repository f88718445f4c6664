'use strict';
/* The Status → Overview include (view/status/include/35_bonding.js). */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./harness');

function includeFile() {
	const dir = path.join(h.HTDOCS, 'view', 'status', 'include');
	const files = fs.readdirSync(dir).filter(f => /^\d\d_bonding\.js$/.test(f));
	assert.equal(files.length, 1, 'one NN_bonding.js include');
	return 'view/status/include/' + files[0];
}

async function overview(reply) {
	const rpc = h.makeRpc(() => reply());
	const loaded = h.loadView(includeFile(), {
		L: h.makeL(false),
		modules: { baseclass: h.baseclass, rpc }
	});
	const inc = h.instantiate(loaded.result);
	const data = await inc.load();	/* must not reject: the overview hides failed includes for good */
	return { inc, out: inc.render(data), rpc };
}

function fields(table) {
	return Object.fromEntries(table.byTag('tr').map(tr => tr.byTag('td').map(h.text)));
}

test('links up of total and the aggregate rate', async () => {
	const { inc, out, rpc } = await overview(() => h.fixture('status.json'));
	assert.equal(inc.title, 'Bonding');
	/* the declarations are bonding/rpc.js's, shared with the status page: it calls only status */
	assert.ok(rpc.declared.some(d => d.object === 'bonding' && d.method === 'status'));
	assert.deepEqual(rpc.calls.map(c => `${c.object}.${c.method}`), [ 'bonding.status' ]);
	const f = fields(out);
	assert.equal(f['Links up'], '2 of 5 (1 degraded)');
	assert.equal(f['Download'], '1.3 kbit/s');	/* 1000 + 300 + 0 + 0 + 0 bit/s */
	assert.equal(f['Upload'], '2.1 kbit/s');	/* 2000 + 100 */
	assert.equal(f['Proxy'], 'xray (running)');
});

test('sums rates in Mbit/s and leaves out degraded when there is none', async () => {
	const st = h.fixture('status.json');
	st.paths.wwan.state = 'up';
	st.paths.wan.rx_bps = 50e6;
	const f = fields((await overview(() => st)).out);
	assert.equal(f['Links up'], '3 of 5');
	assert.equal(f['Download'], '50.0 Mbit/s');
});

test('daemon down: a message, no exception', async () => {
	for (const reply of [
		() => { throw new Error('RPC call to bonding/status failed with error -32000: Object not found'); },
		() => ({}),
		() => h.ubusStatus(4)
	]) {
		const { out } = await overview(reply);
		assert.equal(out.attrs.id, 'bonding-overview-down');
		assert.match(h.text(out), /not running/);
	}
});

test('no bonding ACL: no box at all', async () => {
	const { out } = await overview(() => { throw new Error('RPC call to bonding/status failed with error -32002: Access denied'); });
	assert.equal(out, null);
});
