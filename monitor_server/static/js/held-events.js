// Live /ws/ui events that arrive while the page reads a list over REST wait for that list: read
// before them, it would otherwise wipe them out when it replaces the state. Pure: no DOM.

export class HeldEvents {
  constructor() {
    this.reads = 0;   // list reads under way
    this.held = [];   // events that arrived meanwhile, in order
  }

  // Before a read.
  hold() { this.reads += 1; }

  // Whether `events` were kept for later (a read is under way).
  keep(events) {
    if (!this.reads) return false;
    this.held.push(...events);
    return true;
  }

  // After a read (its list applied, or its failure): the events to apply now, in order; none
  // while another read is still under way.
  done() {
    this.reads = Math.max(0, this.reads - 1);
    if (this.reads || !this.held.length) return [];
    const held = this.held;
    this.held = [];
    return held;
  }
}
