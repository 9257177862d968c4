// Page text. English is complete and always here; the page's other language (es, de, fr, pt,
// ar) lives in i18n/<lang>.js and is loaded for that page only (the template preloads it),
// falling back to English per key.
const en = {
  title: 'Video call with {name}',
  titleAlone: 'Video call',
  checkDevices: 'Check your camera and microphone, then join.',
  micLevel: 'Microphone level',
  camera: 'Camera',
  microphone: 'Microphone',
  yourName: 'Your name',
  join: 'Join call',
  tryAgain: 'Try again',
  noCamera: 'No camera',
  peerCameraOff: '{name} turned the camera off',
  mute: 'Mute',
  unmute: 'Unmute',
  cameraOff: 'Camera off',
  cameraOn: 'Camera on',
  switchCamera: 'Switch camera',
  hangUp: 'Hang up',
  endForAll: 'End for everyone',
  confirmEnd: 'Tap again to end',
  rejoin: 'Rejoin',
  useHere: 'Use here',
  openBrowser: 'Open in browser',
  copyLink: 'Copy link',
  copied: 'Link copied',
  tryAnyway: 'Try here anyway',
  sConnecting: 'Connecting…',
  sWaiting: 'Waiting for {name} to join…',
  sConnected: 'Connected',
  sMediaReconnecting: 'Connection unstable, reconnecting…',
  sReconnecting: 'Reconnecting…',
  sPeerReconnecting: '{name} is reconnecting…',
  sPeerLeft: '{name} left the call',
  deniedTitle: 'Camera and microphone are blocked',
  deniedText: 'Allow access with the camera icon in the address bar (or in the site settings), then try again. You can also join without them.',
  noDeviceText: 'No camera or microphone found. You can still join and see and hear the other side.',
  busyText: 'Your camera or microphone is used by another app. Close it and try again.',
  otherDeviceText: 'Could not start the camera or microphone.',
  noWebrtcTitle: 'This browser cannot make video calls',
  noWebrtcText: 'Please open this link in a current version of Chrome, Safari, Firefox or Edge.',
  insecureText: 'Video calls need a secure (https) connection.',
  webviewTitle: 'Open this link in your browser',
  webviewText: 'Apps often open links in a built-in view that cannot use the camera. Open it in your browser for the call.',
  webviewIos: 'Tap ··· or the share icon, then "Open in browser". Or copy the link and paste it into Safari.',
  endedTitle: 'The call has ended',
  endedText: 'Thank you. You can close this page.',
  leftTitle: 'You left the call',
  leftText: 'You can rejoin while the call is still going.',
  replacedTitle: 'You joined from somewhere else',
  replacedText: 'This call continues in another tab or on another device.',
  revokedTitle: 'This link was replaced',
  revokedText: 'A newer link was sent for this call. Please use that one.',
  expiredTitle: 'This link has expired',
  expiredText: 'Ask the agent to send you a new link.',
  invalidTitle: 'This link does not work',
  invalidText: 'Check that you opened the whole link, or ask the agent to send it again.',
  errorTitle: 'Something went wrong',
  errorText: 'Please reload the page.',
  customer: 'the customer',
  agent: 'the agent',
  decline: 'Can’t talk now',
  declineWhy: 'Let {name} know why:',
  busy: 'I’m busy',
  notNow: 'Not now',
  otherReason: 'Other reason',
  declinedTitle: 'Thank you',
  declinedText: 'We let {name} know. Goodbye!',
  declinedBanner: '{name} declined the call: {reason}',
  lobbyTitle: 'Please wait',
  lobbyText: '{name} will let you in shortly.',
  people: 'People',
  waiting: 'Waiting to be let in',
  lobbyMsg: 'Message to those waiting',
  send: 'Send',
  admit: 'Admit',
  deny: 'Deny',
  invite: 'Invite',
  role: 'Role',
  name: 'Name',
  email: 'E-mail (optional)',
  agentId: 'Agent ID',
  transfer: 'Transfer',
  transferredBanner: '{name} takes over the call; you will leave it shortly.',
  transferredTitle: 'The call was handed over',
  rAgent: 'Agent',
  rCustomer: 'Customer',
  rExpert: 'Expert',
  rSupervisor: 'Supervisor',
  mode: 'Mode',
  listen: 'Listen',
  whisper: 'Whisper',
  barge: 'Join in',
  muted: 'Muted',
  remove: 'Remove',
  removedTitle: 'You were removed from the call',
  deniedLobbyTitle: 'You were not let in',
  fullTitle: 'The call is full',
  fullText: 'Four people are already in the call.',
  call: 'Call',
  callControls: 'Call controls',
};

const lang = document.documentElement.lang;
let dict = en;
if (lang !== 'en' && /^[a-z]{2}$/.test(lang)) {
  try {
    dict = (await import(`./i18n/${lang}.js`)).default;
  } catch {
    // Unknown language or a failed fetch: English.
  }
}

/** Text for `key` in the page language, with `{var}` placeholders filled in. */
export function t(key, vars = {}) {
  const s = dict[key] ?? en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? '');
}

/** Translates every element carrying `data-t` (text) or `data-tl` (its aria-label). */
export function translate(root, vars) {
  for (const el of root.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t, vars);
  for (const el of root.querySelectorAll('[data-tl]')) el.setAttribute('aria-label', t(el.dataset.tl, vars));
}
