// The demo agent desktop: mounts the widget and shows what the chat platform would show.
const mount = document.getElementById('sightline');
const list = document.getElementById('messages');
const { token, platform, conversation, agent, customer } = mount.dataset;

function add(kind, who, text, link) {
  const li = document.createElement('li');
  li.className = `msg ${kind}`;
  if (who) {
    const b = document.createElement('b');
    b.textContent = who;
    li.append(b);
  }
  const p = document.createElement('p');
  p.textContent = text;
  if (link) {
    p.append(' ');
    const a = document.createElement('a');
    a.href = link;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = link;
    a.className = 'join-link';
    p.append(a);
  }
  li.append(p);
  list.append(li);
  return li;
}

const events = [];
window.sightlineDemoEvents = events;
window.sightlineWidget = window.Sightline.mount(mount, {
  token,
  conversation: { platform, id: conversation },
  customer: { name: customer },
  onEvent(name, data) {
    events.push({ name, data, at: Date.now() });
    if (name === 'session-created') {
      add('out', agent, 'Join me on video here:', data.customer_url).dataset.kind = 'link';
    } else if (name === 'customer-joined') {
      add('sys', '', `${customer} joined the video call.`);
    } else if (name === 'customer-left') {
      add('sys', '', `${customer} left the video call.`);
    } else if (name === 'ended') {
      add('sys', '', 'The video call ended.');
    }
  },
});
