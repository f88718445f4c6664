'use strict';
'require view';
'require form';
'require bonding.config.options as options';
'require bonding.config.globals as globals';
'require bonding.config.servers as servers';
'require bonding.config.links as links';
'require bonding.config.usb as usb';

/*
 * Services → Bonding → Configuration: /etc/config/bonding, validated here with LuCI's datatypes
 * against the same ranges bondingd checks (python/bonding/config/).  Save & Apply commits the
 * file and procd's reload trigger makes bondingd reload it.  The sections are modules of their
 * own under bonding/config/: globals (one tab per concern), servers, links, usb; options holds
 * what they share.
 *
 * Server keys live in /etc/config/bonding_secrets, which no LuCI login reaches through uci:
 * rpcd refuses reading it to everyone (so LuCI could not re-read it after staging a change),
 * and the ACL grants no writing either.  A key is handed to bondingd's `set_key` method (the
 * write ACL grants it), which stores it and never gives it back.  The key field is therefore
 * write-only: empty means "keep the stored key", anything typed replaces it, and it is stored
 * when the server dialog is saved, not staged for Save & Apply.
 */

return view.extend({
	render: function() {
		/* LuCI marks the footer's Save & Apply disabled on a read-only page, but its click
		 * handler still runs: a read-only page gets no footer at all */
		if (L.hasViewPermission() !== true)
			this.handleSaveApply = this.handleSave = this.handleReset = null;

		const m = new form.Map('bonding', _('Bonding configuration'),
			_('Links, aggregation servers and the settings of bondingd. Save & Apply makes bondingd reload its configuration; live connections are kept.'));
		m.tabbed = true;

		globals.section(m);
		servers.section(m, L.hasViewPermission() === true);
		links.section(m);
		usb.section(m);
		options.writeOnlyChanges(m);

		return m.render();
	}
});
