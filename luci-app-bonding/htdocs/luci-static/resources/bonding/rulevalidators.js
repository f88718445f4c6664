'use strict';
'require baseclass';

/*
 * The validators of the rules page: the same checks bondingd makes of a `config rule` section
 * (python/bonding/config/rules.py; tests/luci/test_luci_rules.py holds them against it).  Each
 * takes one value (a DynamicList validates each entry) and returns true or the message LuCI
 * shows.  Empty is always fine: the option is then unset.
 */

const NAME_RE = /^[A-Za-z0-9_]{1,32}$/;
const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function empty(value) {
	return value == null || String(value).trim() === '';
}

function expecting(what) {
	return _('Expecting: %s').format(what);
}

/* Six hex pairs, ':' or '-' between them; not a multicast address. */
function mac(value) {
	if (empty(value))
		return true;
	const v = String(value).trim().toLowerCase().replace(/-/g, ':');
	if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(v))
		return expecting(_('a MAC address: six hex pairs like aa:bb:cc:dd:ee:ff'));
	if (parseInt(v.substring(0, 2), 16) & 1)
		return _('A multicast MAC address: a device\'s own address has bit 0 of the first byte clear');
	return true;
}

/* Dotted quad to a 32-bit number (no leading zeros, as Python's ipaddress), else null. */
function quad(s) {
	const m = String(s).match(/^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/);
	if (!m || m.slice(1).some(o => +o > 255))
		return null;
	return ((+m[1] << 24) | (+m[2] << 16) | (+m[3] << 8) | +m[4]) >>> 0;
}

/* The prefix length of "24", a netmask "255.255.255.0" or a hostmask "0.0.0.255", else null
 * (the forms Python's IPv4Network takes). */
function prefixLength(s) {
	if (/^\d+$/.test(s))
		return (+s <= 32) ? +s : null;
	const mask = quad(s);
	if (mask == null)
		return null;
	for (const m of [ mask, (~mask) >>> 0 ])
		for (let bits = 0; bits <= 32; bits++)
			if (m === (bits ? (0xffffffff << (32 - bits)) >>> 0 : 0))
				return bits;
	return null;
}

/* An IPv4 address or network without host bits (10.0.0.0/8, 192.0.2.7); IPv6 is refused. */
function ipv4(value) {
	if (empty(value))
		return true;
	const v = String(value).trim();
	if (v.indexOf(':') >= 0)
		return _('An IPv6 address: rules match IPv4 (IPv6 is not NATed, it cannot be pinned to one WAN); match the device by its MAC address to act on its IPv6');
	const slash = v.indexOf('/');
	const addr = quad(slash < 0 ? v : v.substring(0, slash));
	const bits = slash < 0 ? 32 : prefixLength(v.substring(slash + 1));
	if (addr == null || bits == null)
		return expecting(_('an IPv4 address or network, like 192.0.2.7 or 198.51.100.0/24'));
	if (bits < 32 && (addr & (0xffffffff >>> bits)) >>> 0)
		return expecting(_('a network address without host bits, like 10.0.0.0/8'));
	return true;
}

/* A domain name of two labels or more (it matches its subdomains too), not an address. */
function domain(value) {
	if (empty(value))
		return true;
	const v = String(value).trim().toLowerCase().replace(/\.+$/, '');
	const labels = v.split('.');
	if (v.length > 253 || labels.length < 2 || /^\d+$/.test(labels[labels.length - 1]) ||
	    !labels.every(l => LABEL_RE.test(l)))
		return expecting(_('a domain name like example.com (it matches its subdomains too); an address goes in the destination addresses'));
	return true;
}

/* A port, or a range low-high, within 1–65535. */
function port(value) {
	if (empty(value))
		return true;
	const m = String(value).trim().match(/^(\d{1,5})(?:-(\d{1,5}))?$/);
	if (!m)
		return expecting(_('a port or a range, like 443 or 8000-8100'));
	const lo = +m[1], hi = (m[2] != null) ? +m[2] : lo;
	if (!(lo >= 1 && lo <= hi && hi <= 65535))
		return _('Out of range: ports are 1–65535, the range low-high');
	return true;
}

/* A path (or rule) name: letters, digits and '_', at most 32. */
function name(value) {
	if (empty(value) || NAME_RE.test(String(value).trim()))
		return true;
	return expecting(_('a name of letters, digits and \'_\' (at most 32), like wan2'));
}

/* bond, bypass or path:<name>; `paths`: the path sections' names (none: any name will do). */
function action(value, paths) {
	if (empty(value))
		return true;
	const v = String(value).trim();
	if (v === 'bond' || v === 'bypass')
		return true;
	if (v.indexOf('path:') !== 0)
		return expecting(_('bond, bypass or path:<name> (like path:wan2)'));
	const p = v.substring(5);
	if (!NAME_RE.test(p))
		return expecting(_('a path name of letters, digits and \'_\' after path:, like path:wan2'));
	if (paths && paths.length && paths.indexOf(p) < 0)
		return _('No link \'%s\': use one of %s').format(p, paths.join(', '));
	return true;
}

return baseclass.extend({
	NAME_RE: NAME_RE,
	mac: mac,
	ipv4: ipv4,
	domain: domain,
	port: port,
	name: name,
	action: action
});
