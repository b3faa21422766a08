// The wall's alarm for a new tier-1 (urgent) alert: a beep made with WebAudio (no sound file) and a
// desktop notification, unless muted. Browsers let a page play sound only after a user gesture, so
// the audio is armed on the first click or key press on the page; before that an alarm is counted
// and notified but silent. The mute switch is remembered in this browser.
//
// Test hook: every alarm raised increments `window.__vigilAlarm.count` (with `.sounded`,
// `.notified` and `.last`) and dispatches a `vigil:alarm` event on `document` whose `detail` says
// {alertId, sound, notification}.

const MUTE_KEY = "vigil.mute";
let audio = null;
const hook = (globalThis.__vigilAlarm ??= { count: 0, sounded: 0, notified: 0, last: null });

function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function isMuted() {
  return stored(MUTE_KEY) === "1";
}

export function setMuted(muted) {
  try {
    localStorage.setItem(MUTE_KEY, muted ? "1" : "0");
  } catch {
    /* this page only */
  }
}

/** Whether the audio has been armed by a user gesture (and so can sound). */
export const audioArmed = () => audio !== null && audio.state === "running";

function arm() {
  const Context = globalThis.AudioContext ?? globalThis.webkitAudioContext;
  if (!Context) return;
  try {
    audio ??= new Context();
    if (audio.state === "suspended") audio.resume().catch(() => {});
  } catch {
    audio = null;
  }
}

/** Arm the audio on the first user gesture; returns the function that stops listening. */
export function armOnGesture(onArmed = () => {}) {
  // click, not pointerdown: what the arming repaints must not move the page between a press and
  // its release (the click would then miss the button that was pressed).
  const events = ["click", "keydown", "touchend"];
  const handler = () => {
    arm();
    for (const e of events) document.removeEventListener(e, handler, true);
    onArmed();
  };
  for (const e of events) document.addEventListener(e, handler, true);
  return () => events.forEach((e) => document.removeEventListener(e, handler, true));
}

function beep() {
  if (!audioArmed()) return false;
  const now = audio.currentTime;
  for (let i = 0; i < 3; i += 1) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = i % 2 ? 660 : 880;
    const start = now + i * 0.25;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.2);
    osc.connect(gain).connect(audio.destination);
    osc.start(start);
    osc.stop(start + 0.22);
  }
  return true;
}

export const notificationsSupported = () => typeof Notification === "function";
export const notificationsAllowed = () => notificationsSupported() && Notification.permission === "granted";

/** Ask for desktop notifications (call from a click). Resolves to the permission. */
export async function askNotifications() {
  if (!notificationsSupported()) return "denied";
  if (Notification.permission !== "default") return Notification.permission;
  return Notification.requestPermission();
}

function notify(title, body, tag, onClick) {
  if (!notificationsAllowed()) return false;
  try {
    const n = new Notification(title, { body, tag, requireInteraction: true });
    n.onclick = () => {
      globalThis.focus?.();
      onClick?.();
      n.close();
    };
    return true;
  } catch {
    return false; // e.g. a platform that only allows notifications from a service worker
  }
}

/** Raise the alarm for a tier-1 alert: sound and notification unless muted. */
export function raise({ alertId, title, body, onClick }) {
  const muted = isMuted();
  const sound = !muted && beep();
  const notification = !muted && notify(title, body, alertId, onClick);
  hook.count += 1;
  if (sound) hook.sounded += 1;
  if (notification) hook.notified += 1;
  hook.last = { alertId, sound, notification, muted };
  document.dispatchEvent(new CustomEvent("vigil:alarm", { detail: { alertId, sound, notification, muted } }));
}
