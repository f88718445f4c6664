'use strict';
'require baseclass';
'require bonding.format as fmt';

/*
 * Rates from pairs of byte counters.  The clock is bondingd's own (`counters_at`, when the daemon
 * says when it read the counters, else `uptime`), so neither network latency nor the browser's
 * timers skew the rates; without either we fall back to the browser's clock.  A counter that goes
 * backwards (device re-created, daemon restarted) yields no rate for that pair.
 */

const MIN_SAMPLE_SPAN = 1;	/* seconds: closer counter readings (a poll right after a probe) wait */

/* When the counters of a status reply were read: { clock, t } with t in seconds. */
function readingTime(status, nowMs) {
	if (fmt.isNum(status.counters_at))
		return { clock: 'daemon', t: status.counters_at };
	if (fmt.isNum(status.uptime))
		return { clock: 'daemon', t: status.uptime };
	return { clock: 'browser', t: nowMs / 1000 };
}

/* The byte counters of every link that has both: { name: { rx, tx } } */
function readCounters(status) {
	const counters = {};
	const paths = fmt.isObject(status.paths) ? status.paths : {};

	for (const name in paths) {
		const p = paths[name];
		if (fmt.isObject(p) && fmt.isNum(p.rx_bytes) && fmt.isNum(p.tx_bytes))
			counters[name] = { rx: p.rx_bytes, tx: p.tx_bytes };
	}

	return counters;
}

/* The rates between two readings, per link and in total; null when no link has a pair. */
function rateSample(prev, counters, t) {
	const dt = t - prev.t;
	const sample = { t: t, links: {}, total: { rx: 0, tx: 0 } };
	let n = 0;

	for (const name in counters) {
		const before = prev.counters[name];
		if (!before)
			continue;

		const drx = counters[name].rx - before.rx;
		const dtx = counters[name].tx - before.tx;
		if (drx < 0 || dtx < 0)
			continue;

		const rate = { rx: drx * 8 / dt, tx: dtx * 8 / dt };
		sample.links[name] = rate;
		sample.total.rx += rate.rx;
		sample.total.tx += rate.tx;
		n++;
	}

	return n > 0 ? sample : null;
}

function RateTracker(windowSeconds) {
	this.window = windowSeconds;
	this.prev = null;
	this.samples = [];
}

/* Take one status reply; returns the sample it completed, or null. */
RateTracker.prototype.update = function(status, nowMs) {
	const at = readingTime(status, nowMs);
	const clock = at.clock, t = at.t;
	const counters = readCounters(status);
	const prev = this.prev;

	if (prev && prev.clock == clock && t >= prev.t && t - prev.t < MIN_SAMPLE_SPAN)
		return null;	/* too close to the last reading to give a rate: wait for the next */

	if (!prev || prev.clock != clock || t < prev.t)
		this.samples = [];	/* first reading, or the daemon restarted */
	else {
		const sample = rateSample(prev, counters, t);
		if (sample)
			this.samples.push(sample);
	}

	this.prev = { clock: clock, t: t, counters: counters };

	while (this.samples.length && this.samples[0].t < t - this.window)
		this.samples.shift();

	const last = this.samples[this.samples.length - 1];
	return (last && last.t == t) ? last : null;
};

/* The current rate of a link: from the newest counter pair, else bondingd's own figure. */
RateTracker.prototype.current = function(name, dir, p) {
	const last = this.samples[this.samples.length - 1];

	if (this.prev && last && last.t == this.prev.t && last.links[name])
		return last.links[name][dir];

	const own = (dir == 'rx') ? p.rx_bps : p.tx_bps;
	return fmt.isNum(own) ? own : null;
};

return baseclass.extend({
	RateTracker: RateTracker
});
