'use strict';
/*
 * Reads {validator: [values]} as JSON on stdin and prints {validator: [true | message]}: the
 * rules page's validators (bonding/rulevalidators.js) on each value, for
 * tests/luci/test_luci_rules.py to hold against bondingd's own (python/bonding/config/rules.py).
 * Not a test itself.
 */
const fs = require('node:fs');
const h = require('./harness');

const rv = h.loadModule('bonding.rulevalidators', { L: h.makeL(true) });
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const out = {};
for (const [ name, values ] of Object.entries(input))
	out[name] = values.map(v => rv[name](v));
process.stdout.write(JSON.stringify(out) + '\n');
