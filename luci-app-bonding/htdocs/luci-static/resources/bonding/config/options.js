'use strict';
'require baseclass';
'require form';

/*
 * What the configuration page's sections share: LuCI options that write only what the user
 * changed, grid cells that show bondingd's defaults, and tables of integer options.
 */

/*
 * A save writes only what the user changed.  LuCI's own options delete a value equal to their
 * default (and a Flag whose rmempty is false is written on every save): a first save wrote
 * globals.enabled and dropped usb.auto_dhcp, usb.modem_mbim and globals.log_level, all as
 * shipped.  Here an option whose form value is what the form showed (the stored value, else
 * the default) leaves the config alone; any other goes through LuCI's own parse.
 */
function writeOnlyChanges(m) {
	for (const s of m.children)
		for (const o of s.children) {
			const parse = o.parse;
			o.parse = function(section_id) {
				if (this.isActive(section_id) && this.isValid(section_id)) {
					const stored = this.cfgvalue(section_id);
					const shown = (stored != null && stored !== '') ? stored : this.default;
					if (shown != null && !Array.isArray(shown) && this.formvalue(section_id) == shown)
						return Promise.resolve();
				}
				return parse.call(this, section_id);
			};
		}
}

/* An option's cell in a grid shows bondingd's default when the option is unset, not "none". */
function showDefault(o, dflt) {
	o.textvalue = function(section_id) {
		const v = this.cfgvalue(section_id);
		return (v != null && v !== '') ? String(v) : _('%s (default)').format(dflt);
	};
}

/*
 * Integer options of a tab and their ranges, the same bounds bondingd enforces: rows of
 * [ option, title, description, min, max, default ].  The default is only a placeholder: unset
 * means bondingd's default, never written.
 */
function intOptions(s, tab, rows) {
	const made = {};
	for (const [ name, title, description, min, max, dflt ] of rows) {
		const o = s.taboption(tab, form.Value, name, title, description);
		o.datatype = 'and(uinteger,range(%d,%d))'.format(min, max);
		o.placeholder = dflt;
		made[name] = o;
	}
	return made;
}

/*
 * A grid of named sections of one type (links, servers, rules): rows added and removed in the
 * grid, descriptions in the edit dialog only, and an Enabled flag editable in the row.
 */
function gridSection(m, type, title, description, addTitle) {
	const s = m.section(form.GridSection, type, title, description);
	s.addremove = true;
	s.anonymous = false;
	s.nodescriptions = true;
	s.addbtntitle = addTitle;

	const o = s.option(form.Flag, 'enabled', _('Enabled'));
	o.default = o.enabled;
	o.editable = true;
	return s;
}

return baseclass.extend({
	writeOnlyChanges: writeOnlyChanges,
	gridSection: gridSection,
	showDefault: showDefault,
	intOptions: intOptions
});
