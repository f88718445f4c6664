'use strict';
'require baseclass';
'require form';
'require bonding.validators as validators';

/* The configuration page's USB links and modems (section usb). */

function usbSection(m) {
	const s = m.section(form.NamedSection, 'usb', 'usb', _('USB links and modems'));
	s.addremove = false;

	let o = s.option(form.Flag, 'auto_dhcp', _('USB links join by themselves'),
		_('A new USB network device (phone tethering, a modem in network mode) becomes a DHCP WAN link in the wan zone.'));
	o.default = o.enabled;

	o = s.option(form.Flag, 'modem_mbim', _('Switch modems to MBIM'),
		_('Quectel modems found in another mode are switched to MBIM.'));
	o.default = o.enabled;

	o = s.option(form.Value, 'metric_base', _('First metric'),
		_('USB links get route metrics from this value to this value + 15, the first free one each.'));
	o.datatype = 'and(uinteger,range(1,1000))';
	o.placeholder = '40';

	o = s.option(form.Value, 'apn', _('Modem APN'),
		_('Access point name for modems brought up over MBIM or QMI (ask the mobile operator, e.g. "internet"). Tethered phones and DHCP dongles need none.'));
	o.validate = validators.apn;
}

return baseclass.extend({
	section: usbSection
});
