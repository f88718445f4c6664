'use strict';
'require baseclass';
'require ui';
'require bonding.format as fmt';

/*
 * The links table of the status page: one row per link with its state badges, the reason in
 * words, RTT, jitter, loss, rates and time in state, and (with write access) the buttons that
 * probe a link now or force it to backup.  The buttons and the link's name call the view's
 * handleProbe, handleBackup and handleDetails.
 */

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

function td(title, content, attrs) {
	return E('td', Object.assign({ 'class': 'td', 'data-title': title }, attrs || {}), content);
}

function actionsCell(view, name, p) {
	return E('td', { 'class': 'td cbi-section-actions', 'style': 'white-space:nowrap' }, [
		E('button', {
			'class': 'cbi-button cbi-button-action bonding-probe',
			'title': _('Probe this link now and show the result'),
			'click': ui.createHandlerFn(view, 'handleProbe', name)
		}, [ _('Probe now') ]),
		' ',
		E('button', {
			'class': 'cbi-button %s bonding-backup'.format(p.forced_backup ? 'cbi-button-positive' : 'cbi-button-neutral'),
			'title': _('Until the next reload; set "Forced backup" under Configuration to keep it'),
			'click': ui.createHandlerFn(view, 'handleBackup', name, !p.forced_backup)
		}, [ p.forced_backup ? _('Clear backup') : _('Force backup') ])
	]);
}

function linkRow(view, name, p, rates) {
	const d = describeLink(p);
	const rx = rates.current(name, 'rx', p);
	const tx = rates.current(name, 'tx', p);
	const where = [ p.interface, p.device ].filter(v => v).join(' / ');

	return E('tr', { 'class': 'tr', 'data-link': name, 'data-state': d.state }, [
		td(_('Link'), [
			E('a', {
				'href': '#',
				'class': 'bonding-details',
				'title': _('Show the probe results of this link'),
				'click': ui.createHandlerFn(view, 'handleDetails', name)
			}, [ E('strong', {}, [ name ]) ]),
			where ? E('div', { 'style': 'opacity:.8' }, [ where ]) : ''
		]),
		td(_('State'), d.badges.map(fmt.badge)),
		td(_('Reason'), [ d.reason || '–' ], { 'class': 'td bonding-reason', 'style': 'min-width:14em' }),
		/* a dead link's last RTT is no figure of it any more: none beside its 100 % loss */
		td(_('RTT'), [ (d.state == 'down') ? '–' : fmt.formatMs(p.rtt_ms) ]),
		td(_('Jitter'), [ (d.state == 'down') ? '–' : fmt.formatMs(p.jitter_ms) ]),
		td(_('Loss'), [ fmt.formatPct(p.loss_pct) ]),
		td(_('Download'), [ fmt.formatRate(rx) ], { 'class': 'td bonding-rx', 'data-bps': rx }),
		td(_('Upload'), [ fmt.formatRate(tx) ], { 'class': 'td bonding-tx', 'data-bps': tx }),
		td(_('Subflows'), [ fmt.isNum(p.subflows) ? String(p.subflows) : '–' ]),
		td(_('In state for'), [ fmt.formatSince(p.since) ])
	]);
}

return baseclass.extend({
	describeLink: describeLink,

	/*
	 * The summary line and the table of the links in status reply `st`, rates from `rates`
	 * (a RateTracker); `view` handles the clicks, `writable` adds the action buttons.
	 */
	render: function(view, st, rates, writable) {
		const names = Object.keys(st.paths).sort();

		if (!names.length)
			return E('em', {}, [ _('No links: add one under Configuration, or let bondingd find the WAN interfaces of netifd.') ]);

		const head = [
			_('Link'), _('State'), _('Reason'), _('RTT'), _('Jitter'), _('Loss'),
			_('Download'), _('Upload'), _('Subflows'), _('In state for')
		];
		const up = names.filter(n => fmt.isObject(st.paths[n]) && st.paths[n].state == 'up').length;
		const rows = [
			E('tr', { 'class': 'tr table-titles' }, head.map(h => E('th', { 'class': 'th' }, [ h ])))
		];

		if (writable)
			rows[0].appendChild(E('th', { 'class': 'th cbi-section-actions' }, [ _('Actions') ]));

		for (const name of names) {
			const p = fmt.isObject(st.paths[name]) ? st.paths[name] : {};
			const row = linkRow(view, name, p, rates);

			if (writable)
				row.appendChild(actionsCell(view, name, p));

			rows.push(row);
		}

		return [
			E('p', { 'id': 'bonding-summary' }, [
				_('%d of %d links up').format(up, names.length)
			]),
			E('table', { 'class': 'table', 'id': 'bonding-links-table' }, rows)
		];
	}
});
