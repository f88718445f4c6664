'use strict';
'require baseclass';

/*
 * Numbers, durations and states in words, and the coloured state badge: shared by the status
 * page's widgets and the Status → Overview include.
 */

const STATE_STYLE = {
	up:       'background:#2e7d32;color:#fff',
	degraded: 'background:#ef6c00;color:#fff',
	backup:   'background:#1565c0;color:#fff',
	down:     'background:#c62828;color:#fff',
	disabled: 'background:#757575;color:#fff',
	active:   'background:#2e7d32;color:#fff',
	standby:  'background:#1565c0;color:#fff'
};
const UNKNOWN_STYLE = 'background:#999;color:#fff';

function isObject(v) {
	return v != null && typeof v == 'object' && !Array.isArray(v);
}

function isNum(v) {
	return typeof v == 'number' && isFinite(v);
}

/* An error in one line: LuCI's RPC errors carry the call stack after the message. */
function errorText(err) {
	const msg = (err && err.message) ? err.message : String(err);
	return msg.split('\n')[0].replace(/\s+at\s+\S+\s+\(.*$/, '');
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

/* How long ago a bondingd timestamp (seconds since the epoch) was, in words. */
function formatSince(since) {
	return isNum(since) ? formatDuration(Date.now() / 1000 - since) : '–';
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

/* The style of a state's badge, grey for a state we do not know. */
function stateStyle(state) {
	return STATE_STYLE[state] || UNKNOWN_STYLE;
}

function badge(state) {
	return E('span', {
		'class': 'bonding-badge bonding-badge-%s'.format(state),
		'data-state': state,
		'style': stateStyle(state) + ';border-radius:3px;padding:1px 6px;margin-right:4px;white-space:nowrap'
	}, [ stateLabel(state) ]);
}

return baseclass.extend({
	isObject: isObject,
	isNum: isNum,
	errorText: errorText,
	formatRate: formatRate,
	formatMs: formatMs,
	formatPct: formatPct,
	formatDuration: formatDuration,
	formatSince: formatSince,
	stateLabel: stateLabel,
	stateStyle: stateStyle,
	badge: badge
});
