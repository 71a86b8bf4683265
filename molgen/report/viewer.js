// Ball-and-stick molecules on a canvas 2D context: shaded spheres painted from the back to the front, bonds as
// written in the SDF (one, two or three sticks), drag to rotate, wheel to zoom. No WebGL, no library.
// A molecule is {e: [element index, ...], x: [x0, y0, z0, x1, ...] (Å, centred), b: [[i, j, order], ...]}.
"use strict";

const MolgenViewer = (() => {
  const ELEMENTS = ["H", "C", "N", "O", "F"];
  const COLOURS = [[236, 236, 236], [80, 80, 80], [48, 80, 248], [225, 30, 30], [70, 190, 70]]; // CPK
  const RADII = [0.28, 0.42, 0.40, 0.38, 0.36]; // drawn sphere radius in Å per element
  const BACKGROUND = "#ffffff";
  const STICK = "#8f8f8f";
  const FIXED = "#ff9800"; // ring around the atoms of a fixed fragment

  const rgb = (c, f) => `rgb(${c.map((v) => Math.round(Math.min(255, v * f))).join(",")})`;
  const mix = (c, w) => `rgb(${c.map((v) => Math.round(v + (255 - v) * w)).join(",")})`;

  // 3 x 3 rotations, row-major
  const IDENTITY = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  function multiply(a, b) {
    const out = new Array(9);
    for (let r = 0; r < 3; r++)
      for (let c = 0; c < 3; c++) out[3 * r + c] = a[3 * r] * b[c] + a[3 * r + 1] * b[3 + c] + a[3 * r + 2] * b[6 + c];
    return out;
  }
  // A drag of (dx, dy) pixels turns the molecule about the screen's vertical, then horizontal, axis.
  function turn(rotation, dx, dy) {
    const a = dx * 0.01, b = dy * 0.01;
    const aboutY = [Math.cos(a), 0, Math.sin(a), 0, 1, 0, -Math.sin(a), 0, Math.cos(a)];
    const aboutX = [1, 0, 0, 0, Math.cos(b), -Math.sin(b), 0, Math.sin(b), Math.cos(b)];
    return multiply(aboutX, multiply(aboutY, rotation));
  }

  function reachOf(x) {
    let reach = 0;
    for (let i = 0; i < x.length; i += 3) reach = Math.max(reach, Math.hypot(x[i], x[i + 1], x[i + 2]));
    return reach;
  }

  // What one canvas shows: a molecule, its rotation and zoom, and how many leading atoms are fixed.
  class View {
    constructor(molecule, fixed = 0, reach = null) {
      this.molecule = molecule;
      this.fixed = fixed;
      this.reach = reach === null ? reachOf(molecule.x) : reach; // Å from the centre that must fit
      this.rotation = IDENTITY;
      this.zoom = 1;
    }
  }

  // Screen positions [sx, sy, depth] of every atom; depth grows towards the viewer.
  function project(view, width, height) {
    const { x } = view.molecule, R = view.rotation;
    const scale = (view.zoom * (Math.min(width, height) / 2 - 6)) / (view.reach + 0.5);
    const points = [];
    for (let i = 0; i < x.length; i += 3) {
      const [px, py, pz] = [x[i], x[i + 1], x[i + 2]];
      points.push([
        width / 2 + scale * (R[0] * px + R[1] * py + R[2] * pz),
        height / 2 - scale * (R[3] * px + R[4] * py + R[5] * pz),
        R[6] * px + R[7] * py + R[8] * pz,
      ]);
    }
    return { points, scale };
  }

  // Half of a bond, from atom `from` to the bond's middle, as `order` parallel sticks.
  function halfBond(ctx, a, b, order, scale) {
    const [mx, my] = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
    const length = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
    const [nx, ny] = [-(b[1] - a[1]) / length, (b[0] - a[0]) / length]; // unit normal on the screen
    const gap = 0.13 * scale;
    ctx.lineWidth = Math.max(1, (order === 1 ? 0.14 : 0.08) * scale);
    for (let k = 0; k < order; k++) {
      const offset = (k - (order - 1) / 2) * gap;
      ctx.beginPath();
      ctx.moveTo(a[0] + nx * offset, a[1] + ny * offset);
      ctx.lineTo(mx + nx * offset, my + ny * offset);
      ctx.stroke();
    }
  }

  function sphere(ctx, [cx, cy], radius, colour, fixed) {
    const light = ctx.createRadialGradient(cx - 0.35 * radius, cy - 0.35 * radius, 0.1 * radius, cx, cy, radius);
    light.addColorStop(0, mix(colour, 0.75));
    light.addColorStop(0.55, rgb(colour, 1));
    light.addColorStop(1, rgb(colour, 0.55));
    ctx.beginPath();
    ctx.arc(cx, cy, radius, 0, 2 * Math.PI);
    ctx.fillStyle = light;
    ctx.fill();
    ctx.lineWidth = fixed ? 3 : 0.8;
    ctx.strokeStyle = fixed ? FIXED : "rgba(0,0,0,0.45)";
    ctx.stroke();
  }

  // Paint the view on a canvas of width x height CSS pixels (the context already scaled to them).
  function draw(ctx, view, width, height) {
    const { e, b } = view.molecule;
    const { points, scale } = project(view, width, height);
    const bondsOf = e.map(() => []);
    for (const [i, j, order] of b) {
      bondsOf[i].push([j, order]);
      bondsOf[j].push([i, order]);
    }
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, width, height);
    ctx.strokeStyle = STICK;
    ctx.lineCap = "round";
    const order = e.map((_, i) => i).sort((i, j) => points[i][2] - points[j][2]); // far atoms first
    for (const i of order) {
      ctx.strokeStyle = STICK;
      for (const [j, bondOrder] of bondsOf[i]) halfBond(ctx, points[i], points[j], bondOrder, scale);
      sphere(ctx, points[i], RADII[e[i]] * scale, COLOURS[e[i]], i < view.fixed);
    }
  }

  // Size a canvas for the screen's pixel ratio and paint `canvas.view` on it.
  function paint(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const [width, height] = [canvas.clientWidth || canvas.width, canvas.clientHeight || canvas.height];
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    draw(ctx, canvas.view, width, height);
  }

  // Drag rotates and the wheel zooms whatever view the canvas shows at the time (canvases are reused).
  function interactive(canvas) {
    let last = null;
    canvas.addEventListener("pointerdown", (event) => {
      last = [event.clientX, event.clientY];
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (last === null || !canvas.view) return;
      canvas.view.rotation = turn(canvas.view.rotation, event.clientX - last[0], event.clientY - last[1]);
      last = [event.clientX, event.clientY];
      paint(canvas);
    });
    const stop = () => { last = null; };
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    canvas.addEventListener("wheel", (event) => {
      if (!canvas.view) return;
      event.preventDefault();
      canvas.view.zoom = Math.min(8, Math.max(0.25, canvas.view.zoom * Math.exp(-0.0015 * event.deltaY)));
      paint(canvas);
    }, { passive: false });
    return canvas;
  }

  return { ELEMENTS, COLOURS, View, paint, interactive, reachOf };
})();
