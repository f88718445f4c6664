'use strict';
'require baseclass';
'require form';
'require tools.widgets as widgets';
'require bonding.validators as validators';
'require bonding.config.options as options';

/* The configuration page's links (sections path). */

/*
 * The Interface cell of a link: netifd's badge for an interface netifd knows, the name of one
 * it does not (yet), and the device of a link configured by device (not "unspecified").
 */
function interfaceText(o) {
	const badge = o.textvalue;
	o.textvalue = function(section_id) {
		const iface = this.cfgvalue(section_id);
		const device = this.map.data.get(this.map.config, section_id, 'device');
		if (iface == null || iface === '')
			return device ? _('device %s').format(device) : E('em', {}, [ _('unspecified') ]);
		if ((this.networks || []).some(n => n.getName() == iface))
			return badge.call(this, section_id);
		return device ? '%s (%s)'.format(iface, device) : String(iface);
	};
}

function pathsSection(m) {
	const s = options.gridSection(m, 'path', _('Links'),
		_('One entry per internet link. Without any, bondingd bonds the WAN interfaces of netifd.'),
		_('Add link'));

	let o = s.option(widgets.NetworkSelect, 'interface', _('Interface'),
		_('The netifd interface of this link (wan, wwan, …).'));
	o.nocreate = true;
	o.optional = true;
	o.datatype = 'uciname';
	o.validate = function(section_id, value) {
		const device = this.section.formvalue(section_id, 'device');
		if ((value == null || value === '') && (device == null || device === ''))
			return _('Expecting: %s').format(_('an interface, or a device below'));
		return true;
	};
	interfaceText(o);

	/* optional, in the dialog only: [ option, title, description, datatype ] */
	for (const [ name, title, description, datatype ] of [
		[ 'device', _('Device'),
		  _('Only where the link has no netifd interface: the kernel device, like eth1.'), 'netdevname' ],
		[ 'gateway', _('Gateway'),
		  _('Next hop of the link. Empty: learnt from netifd or the main routing table.'), 'ip4addr(1)' ],
		[ 'gateway6', _('IPv6 gateway'),
		  _('IPv6 next hop of the link, often link-local (fe80::1). Empty: learnt from the main routing table (router advertisements).'), 'ip6addr(1)' ]
	]) {
		o = s.option(form.Value, name, title, description);
		o.datatype = datatype;
		o.optional = true;
		o.modalonly = true;
	}

	o = s.option(form.Flag, 'backup', _('Forced backup'),
		_('Carries traffic only when no other link is up: for metered or expensive links.'));
	o.default = o.disabled;
	o.editable = true;

	o = s.option(form.ListValue, 'role', _('Role'),
		_('Bond: always used. Backup: carries traffic only while no bond link is up, and is probed rarely while it stands by.'));
	o.value('bond', _('Bond'));
	o.value('backup', _('Backup'));
	o.default = 'bond';
	o.optional = true;
	o.modalonly = true;

	o = s.option(form.Value, 'download_kbit', _('Download (kbit/s)'),
		_('The link\'s download rate, if known. Empty: measured.'));
	o.datatype = 'and(uinteger,range(1,100000000))';
	o.optional = true;

	o = s.option(form.Value, 'upload_kbit', _('Upload (kbit/s)'),
		_('The link\'s upload rate, if known. Empty: measured.'));
	o.datatype = 'and(uinteger,range(1,100000000))';
	o.optional = true;

	o = s.option(form.Value, 'congestion_control', _('TCP congestion control'),
		_('For the subflows over this link. Empty: the global setting. cubic suits clean wired links, bbr lossy radio links.'));
	o.value('bbr', 'BBR');
	o.value('cubic', 'CUBIC');
	o.optional = true;
	o.modalonly = true;
	o.validate = validators.congestion;

	o = s.option(form.DynamicList, 'probe_target', _('Probe targets'),
		_('IPv4 and global IPv6 addresses probed through this link. Empty: the global probe targets (per family).'));
	o.datatype = 'or(ip4addr(1),ip6addr(1))';
	o.modalonly = true;
}

return baseclass.extend({
	section: pathsSection
});
