// The report page's recordings: one clock drives every participant's <video>. Each file
// begins at its own wall-clock start (data-offset-ms from the call's first file); at call
// time T a video shows T - offset, and stays paused outside its span.
const section = document.querySelector('[data-recordings]');
if (section) {
  const videos = [...section.querySelectorAll('video')].map((el) => ({
    el,
    offset: Number(el.dataset.offsetMs) / 1000,
    duration: Number(el.dataset.durationMs) / 1000,
  }));
  const play = section.querySelector('[data-rec-play]');
  const seek = section.querySelector('[data-rec-seek]');
  const clock = section.querySelector('[data-rec-clock]');
  const span = Number(seek.max) / 1000;
  let t = 0;
  let playing = false;
  let last = 0;

  const fmt = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, '0')}`;

  function place(force) {
    for (const v of videos) {
      const local = t - v.offset;
      const inside = local >= 0 && (!v.duration || local < v.duration);
      if (!inside) {
        if (!v.el.paused) v.el.pause();
        if (force) v.el.currentTime = Math.max(0, Math.min(local, v.duration || 0));
        continue;
      }
      if (force || Math.abs(v.el.currentTime - local) > 0.25) v.el.currentTime = local;
      if (playing && v.el.paused) v.el.play().catch(() => {});
      if (!playing && !v.el.paused) v.el.pause();
    }
    seek.value = String(Math.round(t * 1000));
    clock.textContent = fmt(t);
  }

  function tick(now) {
    if (!playing) return;
    t += (now - last) / 1000;
    last = now;
    if (t >= span) {
      t = span;
      playing = false;
      play.textContent = 'Play';
    }
    place(false);
    requestAnimationFrame(tick);
  }

  play.addEventListener('click', () => {
    playing = !playing;
    play.textContent = playing ? 'Pause' : 'Play';
    if (playing) {
      if (t >= span) t = 0;
      last = performance.now();
      requestAnimationFrame(tick);
    }
    place(true);
  });
  seek.addEventListener('input', () => {
    t = Number(seek.value) / 1000;
    place(true);
  });
}
