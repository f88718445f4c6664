'use strict';
'require baseclass';

/*
 * The validators of the configuration page beyond LuCI's datatypes: the same checks bondingd
 * makes (python/bonding/config/).  Each returns true or the message LuCI shows.
 */

/* Encrypting, authenticating ciphers only: bondingd refuses the others. */
const CIPHERS = [
	'chacha20-ietf-poly1305', 'aes-256-gcm', 'aes-128-gcm',
	'2022-blake3-aes-128-gcm', '2022-blake3-aes-256-gcm', '2022-blake3-chacha20-poly1305'
];

/* Shadowsocks-2022 keys are base64 of exactly 16 or 32 bytes. */
const KEY_BYTES = {
	'2022-blake3-aes-128-gcm': 16,
	'2022-blake3-aes-256-gcm': 32,
	'2022-blake3-chacha20-poly1305': 32
};

function base64Bytes(s) {
	if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4)
		return -1;
	return s.length / 4 * 3 - (s.match(/=*$/)[0].length);
}

/* MARK or MARK/MASK, hexadecimal or decimal; the mark's bits within the mask, bit 31 free */
function validateMark(section_id, value) {
	if (value == null || value === '')
		return true;

	const m = String(value).match(/^(0x[0-9a-fA-F]{1,8}|[0-9]{1,10})(?:\/(0x[0-9a-fA-F]{1,8}|[0-9]{1,10}))?$/);
	const mark = m ? Number(m[1]) : NaN;
	const mask = m ? Number(m[2] || m[1]) : NaN;

	if (!(mark >= 1 && mark <= 0x7fffffff && mask >= 1 && mask <= 0x3fffffff) || (mark & ~mask))
		return _('Expecting: %s').format(_('MARK or MARK/MASK like 0xb0 or 0xb0/0xff: the mark within the mask, the mask below 0x40000000'));

	return true;
}

/* A network address: no host bits set (10.0.0.0/8, not 10.1.2.3/8). */
function validateNetwork(section_id, value) {
	const m = String(value || '').match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/);
	if (!m)
		return true;	/* a plain address, or the datatype's own error */

	const addr = ((+m[1] << 24) | (+m[2] << 16) | (+m[3] << 8) | +m[4]) >>> 0;
	const bits = +m[5];
	const host = bits >= 32 ? 0 : (addr & (0xffffffff >>> bits)) >>> 0;

	if (host)
		return _('Expecting: %s').format(_('a network address without host bits, like 10.0.0.0/8'));

	return true;
}

/* An IPv6 network address: no host bits set (fd00::/8, not fd00::1/8). */
function validateNetwork6(section_id, value) {
	const m = String(value || '').match(/^([0-9a-fA-F:]+)\/(\d+)$/);
	if (!m || (m[1].match(/::/g) || []).length > 1)
		return true;	/* a plain address, or the datatype's own error */

	const halves = m[1].split('::');
	const head = halves[0] ? halves[0].split(':') : [];
	const tail = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
	const groups = head.concat(Array(Math.max(0, 8 - head.length - tail.length)).fill('0'), tail);
	const bits = +m[2];

	for (let i = 0; i < 8; i++) {
		const keep = Math.max(0, Math.min(16, bits - 16 * i));
		if (parseInt(groups[i] || '0', 16) & (0xffff >> keep))
			return _('Expecting: %s').format(_('a network address without host bits, like fd00::/8'));
	}

	return true;
}

/* A congestion control module's name, as the kernel spells them (bbr, cubic); empty is unset. */
function validateCongestion(section_id, value) {
	if (value == null || value === '' || /^[a-z][a-z0-9_]{0,15}$/.test(value))
		return true;
	return _('Expecting: %s').format(_('a congestion control name like bbr or cubic'));
}

/* A server key for `cipher`: printable, and for Shadowsocks-2022 base64 of the cipher's key size. */
function validateKey(value, cipher) {
	if (value == null || value === '')
		return true;
	if (!/^[\x21-\x7e]{1,256}$/.test(value))
		return _('Expecting: %s').format(_('1 to 256 printable characters without spaces'));

	const bytes = KEY_BYTES[cipher];
	if (bytes && base64Bytes(value) != bytes)
		return _('Expecting: %s').format(_('base64 of %d bytes for %s (openssl rand -base64 %d)').format(bytes, cipher, bytes));

	return true;
}

/* A modem's access point name. */
function validateApn(section_id, value) {
	return (value == null || value === '' || /^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$/.test(value))
		? true : _('Letters, digits, "." and "-", at most 100');
}

return baseclass.extend({
	CIPHERS: CIPHERS,
	mark: validateMark,
	network: validateNetwork,
	network6: validateNetwork6,
	congestion: validateCongestion,
	key: validateKey,
	apn: validateApn
});
