'use strict';
/*
 * LuCI datatype expressions ('and(uinteger,range(1,100))', 'ip4addr(1)', ...) evaluated as
 * luci-base's validation.js evaluates them, for the types this app uses.  An unknown type name
 * throws, as LuCI's compiler raises a SyntaxError: a typo in a view's datatype fails the tests.
 */

function parseInteger(x) { return /^-?\d+$/.test(x) ? +x : NaN; }
function parseDecimal(x) { return /^-?\d+(?:\.\d+)?$/.test(x) ? +x : NaN; }

function parseIPv4(x) {
	const m = String(x).match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
	if (!m || m.slice(1).some(o => +o > 255))
		return null;
	return m.slice(1).map(Number);
}

function isIPv6(x) {
	/* enough for "is this an IPv6 address": hex groups with at most one '::' */
	if (!/^[0-9a-fA-F:]+$/.test(x) || (x.match(/::/g) || []).length > 1)
		return false;
	const groups = x.split(':').filter(g => g !== '');
	return groups.every(g => g.length <= 4) && (x.includes('::') ? groups.length < 8 : groups.length === 8);
}

const TYPES = {
	integer: v => !isNaN(parseInteger(v)),
	uinteger: v => parseInteger(v) >= 0,
	float: v => !isNaN(parseDecimal(v)),
	ufloat: v => parseDecimal(v) >= 0,
	ip4addr: (v, nomask) => {
		const re = nomask ? /^(\d+\.\d+\.\d+\.\d+)$/ : /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+\.\d+\.\d+\.\d+)|\/(\d{1,2}))?$/;
		const m = v.match(re);
		return !!(m && parseIPv4(m[1]) && (m[2] ? parseIPv4(m[2]) : (m[3] ? +m[3] <= 32 : true)));
	},
	ip6addr: (v, nomask) => isIPv6(nomask ? v : v.replace(/\/\d{1,3}$/, '')),
	ipaddr: (v, nomask) => TYPES.ip4addr(v, nomask) || TYPES.ip6addr(v, nomask),
	cidr4: v => {
		const m = v.match(/^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\/(\d{1,2})$/);
		return !!(m && parseIPv4(m[1]) && +m[2] <= 32);
	},
	cidr6: v => {
		const m = v.match(/^([0-9a-fA-F:]+)\/(\d{1,3})$/);
		return !!(m && isIPv6(m[1]) && +m[2] <= 128);
	},
	port: v => { const p = parseInteger(v); return p >= 0 && p <= 65535; },
	hostname: v => v.length <= 253 && (/^[a-zA-Z0-9_]+$/.test(v) ||
		(/^[a-zA-Z0-9_][a-zA-Z0-9_\-.]*[a-zA-Z0-9]\.?$/.test(v) && /[^0-9.]/.test(v))),
	host: (v, ipv4only) => TYPES.hostname(v) || (ipv4only == 1 ? TYPES.ip4addr(v, true) : TYPES.ipaddr(v, true)),
	uciname: v => /^[a-zA-Z0-9_]+$/.test(v),
	netdevname: v => v !== '.' && v !== '..' && /^[^:/%\s]{1,15}$/.test(v),
	string: () => true,
	range: (v, min, max) => { const n = parseDecimal(v); return n >= +min && n <= +max; },
	min: (v, min) => parseDecimal(v) >= +min,
	max: (v, max) => parseDecimal(v) <= +max
};

/* 'and(a,range(1,2))' → { name: 'and', args: [ {name:'a',args:[]}, {name:'range',args:[1,2]} ] } */
function parse(expr) {
	let i = 0;
	const s = expr.replace(/\s+/g, '');

	function node() {
		const m = s.slice(i).match(/^([A-Za-z_]\w*|-?\d+(?:\.\d+)?|'[^']*'|"[^"]*")/);
		if (!m)
			throw new SyntaxError(`bad datatype "${expr}" at ${i}`);
		i += m[0].length;
		const tok = m[1];
		if (/^-?\d/.test(tok))
			return { literal: +tok };
		if (/^['"]/.test(tok))
			return { literal: tok.slice(1, -1) };
		const n = { name: tok, args: [] };
		if (!(tok in TYPES) && tok !== 'and' && tok !== 'or')
			throw new SyntaxError(`unknown datatype "${tok}" in "${expr}"`);
		if (s[i] === '(') {
			i++;
			while (s[i] !== ')') {
				n.args.push(node());
				if (s[i] === ',')
					i++;
				else if (s[i] !== ')')
					throw new SyntaxError(`bad datatype "${expr}" at ${i}`);
			}
			i++;
		}
		return n;
	}

	const tree = node();
	if (i !== s.length)
		throw new SyntaxError(`trailing text in datatype "${expr}"`);
	return tree;
}

function evaluate(n, value) {
	if (n.name === 'and')
		return n.args.every(a => a.literal !== undefined ? String(a.literal) === value : evaluate(a, value));
	if (n.name === 'or')
		return n.args.some(a => a.literal !== undefined ? String(a.literal) === value : evaluate(a, value));
	return TYPES[n.name](value, ...n.args.map(a => a.literal));
}

/* true when `value` is valid for the datatype expression */
function validate(expr, value) {
	return evaluate(parse(expr), String(value));
}

module.exports = { parse, validate };
