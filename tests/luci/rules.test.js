'use strict';
/* The rules view (view/bonding/rules.js): the form of `config rule` sections, validated as
 * bondingd validates them, and each rule's live effect and reason from bondingd's status. */
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const CONFIG = { bonding: {
	globals: { '.type': 'globals' },
	wan: { '.type': 'path', interface: 'wan' },
	wan2: { '.type': 'path', interface: 'wan2' },
	tvbox: { '.type': 'rule', src_mac: [ 'aa:bb:cc:dd:ee:01' ], path: 'wan2', fallback: 'drop' },
	bank: { '.type': 'rule', dest_ip: [ '198.51.100.0/24' ], action: 'bypass' },
	off: { '.type': 'rule', enabled: '0', block_quic: '1' },
	bad: { '.type': 'rule', src_mak: 'x' },
	fresh: { '.type': 'rule', proto: 'udp' }
} };

function statusWith(rules) {
	return Object.assign(h.fixture('status.json'), { rules }, {
		config_problems: [ 'error: bonding.bad.src_mak=\'x\': unknown option of a \'rule\' section' ]
	});
}

const STATUS = statusWith([
	{ name: 'tvbox', match: 'src_mac aa:bb:cc:dd:ee:01', action: 'path:wan2', fallback: 'drop',
	  block_quic: false, effective: 'drop', why: 'wan2 down (down): fallback drop' },
	{ name: 'bank', match: 'dest_ip 198.51.100.0/24', action: 'bypass', fallback: null,
	  block_quic: false, effective: 'any', why: 'action bypass: native, by the default route' }
]);

async function openRules(opts) {
	opts = Object.assign({ writable: true, uci: CONFIG, status: () => STATUS }, opts);
	const uci = h.makeUci(opts.uci);
	const f = h.makeForm(uci);
	const poll = h.makePoll();
	const rpc = h.makeRpc((decl, args) => {
		if (decl.method === 'status')
			return opts.status();
		throw new Error(`unexpected call ${decl.method}`);
	});
	const loaded = h.loadView('view/bonding/rules.js', {
		L: h.makeL(opts.writable),
		modules: { view: h.viewModule, form: f.form, rpc, ui: h.makeUi(), uci, dom: h.dom, poll }
	});
	const view = h.instantiate(loaded.result);
	const node = await view.render(await view.load());
	assert.equal(f.maps.length, 1, 'one form.Map');
	const map = f.maps[0];
	const section = map.children[0];
	const option = name => section.children.find(o => o.option === name);
	return { map, node, uci, f, rpc, poll, section, option, view, loaded };
}

test('one GridSection of rule sections, named, ordered, added and removed', async () => {
	const { map, section } = await openRules();
	assert.equal(map.config, 'bonding');
	assert.deepEqual(map.children.map(s => [ s.constructor.name, s.sectiontype ]), [ [ 'GridSection', 'rule' ] ]);
	assert.equal(section.addremove, true);
	assert.equal(section.anonymous, false, 'a rule is named: status and bondingctl show the name');
	assert.equal(section.sortable, true, 'the first rule that matches decides: order matters');
});

test('every option bondingd takes of a rule is on the form, and no other', async () => {
	const { section } = await openRules();
	const offered = section.children.map(o => o.option).filter(o => !o.startsWith('_'));
	/* python/bonding/config/rules.py SPEC (test_luci_rules.py holds this list against it) */
	assert.deepEqual(offered.sort(), [ 'action', 'block_quic', 'dest_domain', 'dest_ip', 'dest_port', 'enabled',
		'fallback', 'name', 'path', 'proto', 'src_ip', 'src_mac' ]);
	for (const o of section.children.filter(o => [ 'Value', 'DynamicList' ].includes(o.constructor.name)))
		assert.equal(typeof o.validate, 'function', `${o.option} is validated`);
});

test('choices and defaults are bondingd\'s', async () => {
	const { option } = await openRules();
	assert.deepEqual(option('proto').keylist, [ 'any', 'tcp', 'udp' ]);
	assert.equal(option('proto').default, 'any');
	assert.deepEqual(option('fallback').keylist, [ 'bond', 'any', 'drop' ]);
	assert.equal(option('fallback').default, 'bond');
	/* the links: the path sections (bondingd then uses no other) */
	assert.deepEqual(option('action').keylist, [ 'bond', 'bypass', 'path:wan', 'path:wan2' ]);
	assert.equal(option('action').default, 'bond');
	assert.equal(option('enabled').default, '1');
	assert.equal(option('block_quic').default, '0');
});

test('values are refused as bondingd refuses them, with a message', async () => {
	const { option, section } = await openRules();
	section.formvalues = { tvbox: {}, bank: {} };
	const cases = [
		[ 'src_mac', [ 'aa:bb:cc:dd:ee:ff', 'AA-BB-CC-DD-EE-FF', '' ], [ 'aa:bb:cc:dd:ee', '01:00:5e:00:00:01', 'aabbccddeeff' ] ],
		[ 'src_ip', [ '192.168.1.20', '192.168.1.0/28', '0.0.0.0/0' ], [ '192.168.1.1/24', 'fd00::1', '256.1.1.1', '10.0.0.0/33', 'lan' ] ],
		[ 'dest_ip', [ '198.51.100.0/24' ], [ '198.51.100.1/24', '2001:db8::/32' ] ],
		[ 'dest_domain', [ 'example.com', 'TV.ISP.Example.', 'a-b.example' ], [ 'localhost', '192.0.2.1', '-a.example', 'a b.example', 'example.123' ] ],
		[ 'dest_port', [ '443', '8000-8100', '1', '65535' ], [ '0', '65536', '100-10', '80,443', 'http' ] ],
		[ 'action', [ 'bond', 'bypass', 'path:wan2' ], [ 'path:', 'path:nosuch', 'wan2', 'path:wan-2' ] ],
		[ 'path', [ 'wan2', '' ], [ 'nosuch', 'wan 2' ] ],
		[ 'name', [ 'tv_box', '' ], [ 'tv-box', 'x'.repeat(33), 'bank' ] ]
	];
	for (const [ name, good, bad ] of cases) {
		const o = option(name);
		for (const v of good)
			assert.equal(o.validate('tvbox', v), true, `${name} accepts ${v}`);
		for (const v of bad) {
			const r = o.validate('tvbox', v);
			assert.equal(typeof r, 'string', `${name} refuses ${v}`);
			assert.ok(r.length > 15, `${name} says why it refuses ${v}: ${r}`);
		}
	}
});

test('cross-option checks: dest_ip or dest_domain, path agrees with action', async () => {
	const { option, section } = await openRules();
	section.formvalues = { bank: { dest_ip: [ '198.51.100.0/24' ] }, tvbox: { path: 'wan2' } };
	assert.match(option('dest_domain').validate('bank', 'example.com'), /not both/);
	assert.equal(option('dest_domain').validate('tvbox', 'example.com'), true);
	assert.match(option('action').validate('tvbox', 'bypass'), /Contradicts/);
	assert.equal(option('action').validate('tvbox', 'path:wan2'), true);
	assert.equal(option('action').validate('tvbox', 'bond'), true, 'unset action (shown as its default) and path');
});

test('an action naming an unknown link is kept as a choice, and refused', async () => {
	const { option } = await openRules({ uci: { bonding: { wan: { '.type': 'path' },
		r: { '.type': 'rule', action: 'path:gone' } } } });
	assert.deepEqual(option('action').keylist, [ 'bond', 'bypass', 'path:wan', 'path:gone' ]);
	assert.match(option('action').validate('r', 'path:gone'), /No link 'gone'/);
});

test('with no path sections any link name is taken (bondingd takes the paths from netifd)', async () => {
	const { option } = await openRules({ uci: { bonding: { r: { '.type': 'rule' } } } });
	/* offered: the paths bondingd took from netifd (the status fixture's) */
	assert.deepEqual(option('action').keylist.slice(2), Object.keys(h.fixture('status.json').paths).map(p => 'path:' + p));
	assert.equal(option('action').validate('r', 'path:wwan7'), true);
	assert.equal(option('path').validate('r', 'wwan7'), true);
});

test('each rule shows what it does now and why, from bondingd\'s status', async () => {
	const { option } = await openRules();
	const now = sid => {
		const cell = option('_now').textvalue(sid);
		return [ cell.attrs['data-state'], h.text(cell) ];
	};
	assert.deepEqual(now('tvbox'), [ 'drop', 'drop: wan2 down (down): fallback drop' ]);
	assert.deepEqual(now('bank'), [ 'any', 'any: action bypass: native, by the default route' ]);
	assert.deepEqual(now('off'), [ 'off', 'disabled' ]);
	assert.equal(now('bad')[0], 'refused');
	assert.match(now('bad')[1], /unknown option/);
	assert.deepEqual(now('fresh'), [ 'pending', 'not applied yet: Save & Apply' ]);
	/* nothing goes to uci for the Now column */
	assert.equal(typeof option('_now').write, 'function');
	assert.equal(option('_now').write('tvbox', 'x'), undefined);
});

test('with bondingd down the page renders and says so', async () => {
	const { option } = await openRules({ status: () => ({}) });
	assert.match(h.text(option('_now').textvalue('tvbox')), /not running/);
});

test('the poll redraws the Now cells from the next status', async () => {
	let st = STATUS;
	const c = await openRules({ status: () => st });
	assert.equal(c.poll.polls.length, 1);
	const cell = c.option('_now').textvalue('tvbox');
	c.loaded.ctx.document.querySelectorAll = sel => (sel === '.bonding-rule-now' ? [ cell ] : []);
	st = statusWith([ Object.assign({}, STATUS.rules[0], { effective: 'path:wan2', why: 'wan2 up' }) ]);
	await c.poll.polls[0].fn();
	assert.equal(cell.attrs['data-state'], 'path:wan2');
	assert.equal(h.text(cell), 'path:wan2: wan2 up');
});

test('a new rule is saved to uci as typed', async () => {
	const c = await openRules({ uci: { bonding: { wan2: { '.type': 'path' } } } });
	c.uci.add('bonding', 'rule', 'tv');
	c.section.formvalues = { tv: { enabled: '1', src_mac: [ 'aa:bb:cc:dd:ee:01' ], action: 'path:wan2',
		fallback: 'drop', proto: 'any', block_quic: '0' } };
	await c.map.save(null, true);
	assert.deepEqual(c.uci.values.bonding.tv, { '.type': 'rule', '.name': 'tv',
		src_mac: [ 'aa:bb:cc:dd:ee:01' ], action: 'path:wan2', fallback: 'drop' });
	/* an invalid one is not */
	c.section.formvalues.tv.src_mac = [ 'aa:bb' ];
	await assert.rejects(c.map.save(null, true));
});

test('a read-only login gets no Save & Apply, Save or Reset', async () => {
	const { view } = await openRules({ writable: false });
	assert.equal(view.handleSaveApply, null);
	assert.equal(view.handleSave, null);
	assert.equal(view.handleReset, null);
});
