// The report's page: a pool of at most `pool` canvases lent to the cards on screen, the filters and the search,
// and the denoising chain of molecule 0 played in 3D. Needs MolgenViewer (viewer.js) and the JSON in #molgen-data.
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("molgen-data").textContent);
  const cards = Array.from(document.querySelectorAll(".card"));
  const views = new Map(); // molecule index -> MolgenViewer.View, kept so a card keeps its rotation and zoom
  const lent = new Map(); // card -> the canvas it holds now
  const free = []; // canvases not on any card
  const onScreen = new Set(); // cards within reach of the viewport
  let created = 0;

  function viewOf(index) {
    if (!views.has(index)) views.set(index, new MolgenViewer.View(data.molecules[index], data.fixed));
    return views.get(index);
  }

  function takeCanvas() {
    if (free.length) return free.pop();
    if (created >= data.pool) return null; // every canvas is on a card: this card shows its caption only
    created += 1;
    const canvas = document.createElement("canvas");
    canvas.title = "drag to rotate, wheel to zoom";
    return MolgenViewer.interactive(canvas);
  }

  function giveBack(card) {
    const canvas = lent.get(card);
    lent.delete(card);
    canvas.remove();
    canvas.view = null;
    free.push(canvas);
  }

  function lend(card) {
    const canvas = takeCanvas();
    if (canvas === null) return;
    lent.set(card, canvas);
    canvas.view = viewOf(Number(card.dataset.index));
    card.querySelector(".view").appendChild(canvas);
    MolgenViewer.paint(canvas);
  }

  // Canvases go back from cards that left the screen before any card on screen takes one.
  let pending = false;
  function rebalance() {
    pending = false;
    for (const card of Array.from(lent.keys())) if (!onScreen.has(card)) giveBack(card);
    for (const card of cards) if (onScreen.has(card) && !lent.has(card)) lend(card);
  }
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) onScreen.add(entry.target);
      else onScreen.delete(entry.target);
    }
    if (!pending) {
      pending = true;
      requestAnimationFrame(rebalance);
    }
  }, { rootMargin: "100px 0px" });
  cards.forEach((card) => observer.observe(card));

  // Filters: stable only, valid only, failing a given check, SMILES substring.
  const controls = {
    stable: document.getElementById("only-stable"),
    valid: document.getElementById("only-valid"),
    failing: document.getElementById("failing"),
    search: document.getElementById("search"),
  };
  const counter = document.getElementById("shown");
  function passes(card) {
    const flags = card.dataset;
    if (controls.stable.checked && flags.stable !== "1") return false;
    if (controls.valid.checked && flags.valid !== "1") return false;
    const failing = controls.failing.value;
    if (failing && !flags.fails.split("|").includes(failing)) return false;
    const text = controls.search.value.trim();
    return !text || flags.smiles.includes(text);
  }
  function filter() {
    let shown = 0;
    for (const card of cards) {
      card.hidden = !passes(card);
      shown += card.hidden ? 0 : 1;
    }
    counter.textContent = `${shown} of ${cards.length} molecules shown`;
  }
  for (const control of Object.values(controls)) control.addEventListener("input", filter);
  filter();

  // The chain: every frame in one view (its reach is the largest frame's), played while on screen.
  const chainCanvas = document.getElementById("chain-view");
  if (chainCanvas && data.chain) {
    const frames = data.chain;
    const reach = Math.max(...frames.map((frame) => MolgenViewer.reachOf(frame.x)));
    const label = document.getElementById("chain-label");
    const playButton = document.getElementById("chain-play");
    chainCanvas.view = new MolgenViewer.View(frames[0], 0, reach);
    MolgenViewer.interactive(chainCanvas);
    let frame = 0, playing = true, visible = false, timer = null;
    const show = () => {
      chainCanvas.view.molecule = frames[frame];
      label.textContent = `frame ${frame + 1} of ${frames.length}: ${frames[frame].label}`;
      MolgenViewer.paint(chainCanvas);
    };
    const tick = () => {
      timer = null;
      if (!playing || !visible) return;
      frame = (frame + 1) % frames.length;
      show();
      timer = setTimeout(tick, frame === frames.length - 1 ? 2500 : 450);
    };
    const resume = () => { if (timer === null && playing && visible) timer = setTimeout(tick, 450); };
    playButton.addEventListener("click", () => {
      playing = !playing;
      playButton.textContent = playing ? "pause" : "play";
      resume();
    });
    new IntersectionObserver((entries) => {
      visible = entries[entries.length - 1].isIntersecting;
      resume();
    }).observe(chainCanvas);
    show();
  }

  // For a reader's console and for tests: how many canvases exist and how many cards hold one.
  window.molgenReport = { pool: data.pool, created: () => created, lent: () => lent.size, filter };
})();
