// Line charts on a <canvas>, for the dashboard and the playground (inlined into each page).
// series: [{label, color, points: [[x, y], …], dots}]; opts: {title, logY, yMin, yMax, hline}.
function lineChart(canvas, series, opts) {
  opts = opts || {};
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 52, R = 10, T = 22, B = 22;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#222";
  ctx.fillText(opts.title || "", L, 13);
  const f = opts.logY ? (v => (v > 0 ? Math.log10(v) : NaN)) : (v => v);
  let xs = [], ys = [];
  for (const s of series) for (const [x, y] of s.points) {
    const v = f(y);
    if (y !== null && isFinite(v)) { xs.push(x); ys.push(v); }
  }
  if (opts.hline !== undefined) ys.push(f(opts.hline));
  if (xs.length === 0) { ctx.fillStyle = "#999"; ctx.fillText("waiting for data…", L + 10, T + 20); return; }
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = opts.yMin !== undefined ? f(opts.yMin) : Math.min(...ys);
  let y1 = opts.yMax !== undefined ? f(opts.yMax) : Math.max(...ys);
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const px = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const py = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  ctx.strokeStyle = "#ccc"; ctx.lineWidth = 1;
  ctx.strokeRect(L, T, W - L - R, H - T - B);
  ctx.fillStyle = "#555";
  for (let i = 0; i <= 4; i++) {
    const y = y0 + (y1 - y0) * i / 4;
    const label = opts.logY ? "1e" + y.toFixed(1) : (Math.abs(y) >= 100 ? y.toFixed(0) : y.toPrecision(3));
    ctx.fillText(label, 2, py(y) + 4);
    ctx.beginPath(); ctx.moveTo(L, py(y)); ctx.lineTo(L + 4, py(y)); ctx.stroke();
  }
  ctx.fillText(String(Math.round(x0)), L, H - 6);
  const xr = String(Math.round(x1));
  ctx.fillText(xr, W - R - ctx.measureText(xr).width, H - 6);
  if (opts.hline !== undefined) {
    ctx.setLineDash([4, 4]); ctx.strokeStyle = "#999";
    ctx.beginPath(); ctx.moveTo(L, py(f(opts.hline))); ctx.lineTo(W - R, py(f(opts.hline))); ctx.stroke();
    ctx.setLineDash([]);
  }
  let lx = L + 8 + ctx.measureText(opts.title || "").width + 12;
  for (const s of series) {
    ctx.strokeStyle = ctx.fillStyle = s.color; ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    for (const [x, y] of s.points) {
      const v = f(y);
      if (y === null || !isFinite(v)) { started = false; continue; }
      if (s.dots) { ctx.fillRect(px(x) - 2.5, py(v) - 2.5, 5, 5); continue; }
      if (started) ctx.lineTo(px(x), py(v)); else { ctx.moveTo(px(x), py(v)); started = true; }
    }
    ctx.stroke();
    if (s.label) { ctx.fillRect(lx, 6, 10, 8); ctx.fillStyle = "#222"; ctx.fillText(s.label, lx + 13, 13); lx += 22 + ctx.measureText(s.label).width; }
  }
}
