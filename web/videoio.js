/*
 * videoio.js: runs web pages written for the Flash VideoIO component (VideoIO.swf) and the
 * siprtmp gateway on Switchboard, with WebRTC audio and no plug-in.
 *
 * Add one line to the page, before or after the <object>/<embed> of VideoIO.swf:
 *
 *     <script src="/videoio.js"></script>
 *
 * Every <object>/<embed> whose movie is VideoIO*.swf is replaced by a small status box that
 * answers the same JavaScript API: setProperty(name, value), getProperty(name) and
 * callProperty(name, ...args), reachable the old way (document[name] / window[id]), and it
 * calls the page's global onCreationComplete, onPropertyChange and onCallback as Flash did.
 * An `rtmp://server/sip/user@domain?...&arg=authname&arg=authpass&arg=Display Name` source
 * becomes a WebSocket to this server's /phone API (docs/web-api.md); publish 'local' and
 * play 'remote' switch the microphone and the loudspeaker of the call on and off.
 *
 * Settings (optional): window.VideoIOConfig = { server: 'wss://phone.example.com' } or a
 * data-server attribute on the script tag; by default the server that served this file.
 * Documented in docs/sdk.md ("The VideoIO shim").
 */
(function () {
  'use strict';

  var script = document.currentScript;
  var base = script && script.src ? new URL('.', script.src) : new URL('/', location.href);
  var config = Object.assign({}, window.VideoIOConfig || {});
  if (script && script.getAttribute('data-server')) config.server = script.getAttribute('data-server');
  if (!config.server) config.server = (base.protocol === 'https:' ? 'wss://' : 'ws://') + base.host;
  var sdkPromise = null;
  function loadSDK() {
    if (!sdkPromise) sdkPromise = import(config.sdk || new URL('switchboard.js', base).href);
    return sdkPromise;
  }

  var SWF = /videoio[\w.-]*\.swf([?#]|$)/i;

  // The properties the shim keeps, with VideoIO's defaults. Others are ignored, as Flash did.
  function defaults() {
    return {
      src: null, url: null, scheme: null, args: [], publish: null, play: null, farID: null, nearID: null,
      group: null, record: false, live: false, bidirection: false, playing: false, recording: false,
      camera: false, microphone: false, deviceAllowed: false, level: 0, gain: 0.5, volume: 0.5,
      sound: true, rate: 16, codec: 'Speex', encodeQuality: 6, framesPerPacket: 1, silenceLevel: 0,
      echoSuppression: true, echoCancel: true, controls: false, autoplay: true, display: true,
      cameraDimension: '320x240', objectEncoding: 3, proxyType: 'none', bufferTime: -1,
      // Switchboard additions: whether the gateway connection is up, and why it went down.
      connected: false, reason: null,
    };
  }
  var READ_ONLY = { args: 1, scheme: 1, nearID: 1, playing: 0, recording: 0, level: 1, connected: 1, reason: 1, deviceAllowed: 1 };

  function VideoIO(box, objectID) {
    this.box = box;
    this.objectID = objectID;
    this.props = defaults();
    this.phone = null; // the Switchboard Phone (switchboard.js) while connected
    this._gen = 0;
    this._audio = document.createElement('audio');
    this._audio.autoplay = true;
    this._audio.muted = true;
    this._audio.hidden = true;
    box.appendChild(this._audio);
    this._levelTimer = null;
    this._ui();
  }

  // -- the page's API ---------------------------------------------------------------------

  VideoIO.prototype.setProperty = function (name, value) {
    if (!(name in this.props) || READ_ONLY[name] === 1) {
      debug('setProperty(' + name + ') ignored');
      return;
    }
    if (value === '') value = null;
    switch (name) {
      case 'src': return this._setSrc(value);
      case 'url': return this._setUrl(value);
      case 'publish': return this._setPublish(value);
      case 'play': return this._setPlay(value);
      case 'volume':
        this._set(name, Number(value));
        this._audio.volume = Math.max(0, Math.min(1, Number(value) || 0));
        return;
      case 'sound':
        this._set(name, value !== false && value !== 'false');
        this._speaker();
        return;
      default:
        this._set(name, value);
    }
  };

  VideoIO.prototype.getProperty = function (name) {
    if (!(name in this.props)) return null;
    var v = this.props[name];
    return Array.isArray(v) ? v.slice() : v;
  };

  VideoIO.prototype.callProperty = function (name) {
    var args = Array.prototype.slice.call(arguments, 1);
    try {
      if (name === 'call') return this._call(args[0], args.slice(1));
      if (name === 'showSettings') return;
      debug('callProperty(' + name + ') is not supported');
    } catch (e) {
      // Flash swallowed exceptions here; say it on the console instead.
      console.warn('VideoIO callProperty(' + name + '):', e.message || e);
    }
  };

  // -- properties -------------------------------------------------------------------------

  // Sets a property and tells the page (onPropertyChange) when a string, boolean or number
  // changed, as VideoIO did.
  VideoIO.prototype._set = function (name, value) {
    var old = this.props[name];
    this.props[name] = value;
    if (old === value) return;
    var t = typeof value;
    if (t === 'string' || t === 'boolean' || t === 'number') this._notify(name, old, value);
  };

  VideoIO.prototype._notify = function (property, oldValue, newValue) {
    var self = this;
    global('onPropertyChange', { objectID: self.objectID, property: property, oldValue: oldValue, newValue: newValue });
  };

  VideoIO.prototype._setSrc = function (value) {
    var old = this.props.src;
    if (old === value) return;
    this.props.src = value;
    var r = { url: null, scheme: null, args: [], publish: null, play: null, farID: null, group: null, record: false, live: false };
    var params = '';
    if (value != null) {
      value = String(value);
      var i = value.indexOf(':');
      r.scheme = i >= 0 ? value.slice(0, i).toLowerCase() : null;
      if (r.scheme === 'http' || r.scheme === 'https') {
        r.url = value;
      } else {
        i = value.indexOf('?');
        params = i >= 0 ? value.slice(i + 1) : '';
        r.url = i >= 0 ? value.slice(0, i) : value;
      }
    }
    params.split('&').forEach(function (part) {
      if (!part) return;
      var j = part.indexOf('=');
      var name = j >= 0 ? part.slice(0, j) : part;
      var val = j >= 0 ? part.slice(j + 1) : null; // raw, as VideoIO passed them on
      if (name === 'publish' || name === 'play' || name === 'farID' || name === 'group') r[name] = val;
      else if (name === 'live' || name === 'record' || name === 'bidirection') r[name] = val !== 'false';
      else if (name === 'arg') r.args.push(val);
      // anything else (rate=8 in the siprtmp tutorial) is ignored, as by VideoIO
    });
    this.props.args = r.args;
    this.props.scheme = r.scheme;
    this.props.farID = r.farID;
    if ('bidirection' in r) this._set('bidirection', r.bidirection);
    this._set('record', r.record);
    this._setUrl(r.url);
    if (r.publish || r.play) {
      if (this.props.bidirection) {
        this._setPublish(r.publish);
        this._setPlay(r.play);
      } else if (r.publish) {
        this._setPlay(null);
        this._setPublish(r.publish);
      } else {
        this._setPublish(null);
        this._setPlay(r.play);
      }
    } else {
      this._setPublish(null);
      this._setPlay(null);
    }
    if (value != null) this._notify('src', old, value);
  };

  VideoIO.prototype._setUrl = function (value) {
    var old = this.props.url;
    if (old === value) return;
    this.props.url = value;
    if (old != null) this._disconnect();
    if (value != null) this._connect();
    if (value != null) this._notify('url', old, value);
  };

  VideoIO.prototype._setPublish = function (value) {
    var old = this.props.publish;
    if (old === value) return;
    this.props.publish = value;
    if (value != null && !this.props.bidirection && this.props.play != null) this._setPlay(null);
    this._set('microphone', value != null);
    this._set('live', value != null);
    this._microphone();
    if (value != null) this._notify('publish', old, value);
  };

  VideoIO.prototype._setPlay = function (value) {
    var old = this.props.play;
    if (old === value) return;
    this.props.play = value;
    if (value != null && !this.props.bidirection && this.props.publish != null) this._setPublish(null);
    this._speaker();
    if (value != null) this._notify('play', old, value);
  };

  // The call's microphone is on only while 'publish' is set (Flash published the 'local'
  // stream only then); the remote audio plays only while 'play' is set.
  VideoIO.prototype._microphone = function () {
    var call = this.phone && this.phone.currentCall;
    var on = this.props.publish != null;
    if (call && call.muted === on) this.phone.mute(!on);
    this._set('recording', !!(on && call && call.state === 'active'));
    this._levels();
  };

  VideoIO.prototype._speaker = function () {
    var on = this.props.play != null && this.props.sound;
    this._audio.muted = !on;
    var call = this.phone && this.phone.currentCall;
    this._set('playing', !!(this.props.play != null && call && call.state === 'active'));
    if (on && this._audio.srcObject && this._audio.paused) this._audio.play().catch(function () {});
  };

  VideoIO.prototype._levels = function () {
    var self = this;
    var want = this.props.publish != null && this.phone && this.phone.currentCall && this.phone.currentCall.state === 'active';
    if (want && !this._levelTimer) {
      this._levelTimer = setInterval(function () {
        if (!self.phone) return;
        self._set('level', Math.round(self.phone.getLevel('local') * 100) / 100);
        self._meter(self.phone.getLevel('local'), self.phone.getLevel('remote'));
      }, 100);
    } else if (!want && this._levelTimer) {
      clearInterval(this._levelTimer);
      this._levelTimer = null;
      this._set('level', 0);
      this._meter(0, 0);
    }
  };

  // -- the gateway connection -------------------------------------------------------------

  VideoIO.prototype._connect = function () {
    var self = this;
    var gen = ++this._gen;
    var url = this.props.url;
    var m = /^rtmp[a-z]*:\/\/[^/]*\/([^/?#]+)\/?([^?#]*)/i.exec(url || '');
    if (!m || m[1] !== 'sip' || !m[2]) {
      var why = m ? 'only rtmp://server/sip/user@domain sources are supported' : 'not an rtmp:// source: ' + url;
      setTimeout(function () { if (gen === self._gen) self._fail(why); }, 0);
      return;
    }
    var aor = m[2].replace(/^sip:/i, '');
    try {
      aor = decodeURIComponent(aor);
    } catch (_) { /* used as it is */ }
    var a = this.props.args;
    this._status('Connecting…');
    loadSDK().then(function (sdk) {
      if (gen !== self._gen) return;
      var phone = new sdk.Phone({ server: config.server, audioElement: self._audio, reconnect: false, debug: !!config.debug });
      self.phone = phone;
      self._wire(phone, gen);
      return phone.connect({ aor: aor, authname: a[0] || '', password: a[1] || '', displayName: a[2] || '', rate: a[3] || undefined })
        .then(function () {
          if (gen !== self._gen) return;
          self._set('reason', null);
          self._set('connected', true);
          self._set('nearID', '');
          self._status('Connected as ' + aor);
        });
    }).catch(function (e) {
      if (gen !== self._gen) return;
      self._fail(e.reason || e.message || String(e));
    });
  };

  VideoIO.prototype._disconnect = function () {
    this._gen++;
    var phone = this.phone;
    this.phone = null;
    if (phone) phone.disconnect();
    this._set('connected', false);
    this._set('playing', false);
    this._set('recording', false);
    this._levels();
    this._status('Not connected');
  };

  // Connect.Failed / Rejected / Closed: VideoIO told the page by resetting 'src' to null.
  // Switchboard also sets 'reason' (the SIP reason of a refused registration) just before.
  VideoIO.prototype._fail = function (reason) {
    var old = this.props.src;
    this._disconnect();
    this._set('reason', reason);
    this._status('Disconnected: ' + reason);
    if (old != null) {
      this._notify('src', old, null);
      this.props.src = null;
      this.props.url = null;
      this.props.publish = null;
      this.props.play = null;
      this._microphone();
      this._speaker();
    }
  };

  VideoIO.prototype._wire = function (phone, gen) {
    var self = this;
    function cb(method, args) {
      if (gen === self._gen) self._callback(method, args);
    }
    phone.on('invited', function (d) { cb('invited', [d.from, d.to]); });
    phone.on('ringing', function (d) { cb('ringing', [d.reason]); });
    phone.on('accepted', function (d) {
      self._microphone();
      self._speaker();
      cb('accepted', [d.audioCodec, d.videoCodec]);
    });
    phone.on('rejected', function (d) { cb('rejected', [d.reason]); });
    phone.on('cancelled', function (d) { cb('cancelled', [d.from, d.to]); });
    phone.on('byed', function () { cb('byed', []); });
    phone.on('holded', function (d) { cb('holded', [d.hold]); });
    phone.on('dtmf', function (d) { cb('dtmf', [d.digit]); });
    phone.on('callstatechange', function (d) {
      if (gen !== self._gen) return;
      if (d.previous === null) {
        // A new call: its microphone follows 'publish', from the first packet on.
        phone.mute(self.props.publish == null);
      }
      self._microphone();
      self._speaker();
      self._status(d.state === 'ended' ? 'Connected' : 'Call: ' + d.state);
    });
    phone.on('callended', function (d) {
      // Endings the gateway reported have had their callback; failures on this side
      // (WebRTC, microphone, lost connection) end the call the way the page understands.
      if (d.cause === 'failed' || d.cause === 'disconnected') {
        if (d.call.direction === 'outgoing' && !d.call.answeredAt) cb('rejected', [d.reason]);
        else cb('byed', []);
      }
    });
    phone.on('microphoneerror', function () {
      if (gen === self._gen) self._set('deviceAllowed', false);
    });
    phone.on('localstream', function () {
      if (gen === self._gen) self._set('deviceAllowed', true);
    });
    phone.on('disconnected', function (d) {
      if (gen === self._gen) self._fail(d.reason || 'connection closed');
    });
  };

  VideoIO.prototype._callback = function (method, args) {
    global('onCallback', { objectID: this.objectID, method: method, args: args });
  };

  // callProperty('call', rpc, ...args): NetConnection.call(rpc, null, ...args) on the gateway.
  VideoIO.prototype._call = function (method, args) {
    var self = this;
    var phone = this.phone;
    if (!phone || !phone.connected) throw new Error('not connected to server');
    var warn = function (e) { console.warn('VideoIO call(' + method + '):', e.message || e); };
    switch (method) {
      case 'invite':
        phone.call(args[0], { codecs: args.length > 1 ? args.slice(1) : undefined, allowNoMicrophone: true })
          .catch(function (e) {
            self._callback('rejected', [e.code === 'state' ? 'Already in an active or pending call' : e.message]);
          });
        return;
      case 'accept':
        phone.answer({ codecs: args.length ? args : undefined, allowNoMicrophone: true }).catch(warn);
        return;
      case 'reject':
        phone.reject(args[0] || undefined).catch(warn);
        return;
      case 'bye':
        phone.hangup().catch(warn);
        return;
      case 'sendDTMF':
        phone.sendDTMF(String(args[0])).catch(warn);
        return;
      case 'hold':
        phone.hold(args[0] === true || args[0] === 'true').catch(warn);
        return;
      default:
        phone.rpc(method, { args: args }).catch(warn);
    }
  };

  // -- the box that stands where the Flash movie was --------------------------------------

  VideoIO.prototype._ui = function () {
    var b = this.box;
    b.style.cssText += ';display:inline-flex;flex-direction:column;justify-content:center;gap:6px;' +
      'box-sizing:border-box;padding:10px 12px;border-radius:10px;background:#111827;color:#fff;' +
      'font:13px/1.3 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;overflow:hidden;vertical-align:top';
    b.innerHTML = '';
    b.appendChild(this._audio);
    var title = document.createElement('div');
    title.textContent = 'VideoIO · Switchboard';
    title.style.cssText = 'font-size:11px;letter-spacing:1px;text-transform:uppercase;opacity:.6';
    this._statusEl = document.createElement('div');
    this._statusEl.style.cssText = 'font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap';
    b.appendChild(title);
    b.appendChild(this._statusEl);
    this._bars = [meterBar(b, 'mic', '#22c55e'), meterBar(b, 'spk', '#60a5fa')];
    this._status('Not connected');
  };

  VideoIO.prototype._status = function (text) {
    if (this._statusEl) this._statusEl.textContent = text;
  };

  VideoIO.prototype._meter = function (mic, spk) {
    this._bars[0].style.width = Math.round(mic * 100) + '%';
    this._bars[1].style.width = Math.round(spk * 100) + '%';
  };

  function meterBar(parent, label, colour) {
    var row = document.createElement('div');
    row.style.cssText = 'display:flex;align-items:center;gap:6px;font-size:10px;opacity:.85';
    var l = document.createElement('span');
    l.textContent = label;
    l.style.width = '22px';
    var track = document.createElement('div');
    track.style.cssText = 'flex:1;height:5px;border-radius:3px;background:rgba(255,255,255,.15);overflow:hidden';
    var fill = document.createElement('div');
    fill.style.cssText = 'height:100%;width:0;background:' + colour;
    track.appendChild(fill);
    row.appendChild(l);
    row.appendChild(track);
    parent.appendChild(row);
    return fill;
  }

  // -- finding and replacing the Flash movies ---------------------------------------------

  function movieOf(el) {
    if (el.tagName === 'EMBED') return el.getAttribute('src') || '';
    var data = el.getAttribute('data');
    if (data) return data;
    var ps = el.getElementsByTagName('param');
    for (var i = 0; i < ps.length; i++) {
      var n = (ps[i].getAttribute('name') || '').toLowerCase();
      if ((n === 'movie' || n === 'src') && ps[i].parentNode === el) return ps[i].getAttribute('value') || '';
    }
    return '';
  }

  function flashVars(el) {
    var s = '';
    if (el.tagName === 'EMBED') s = el.getAttribute('flashvars') || '';
    else {
      var ps = el.getElementsByTagName('param');
      for (var i = 0; i < ps.length; i++) {
        if ((ps[i].getAttribute('name') || '').toLowerCase() === 'flashvars' && ps[i].parentNode === el) s = ps[i].getAttribute('value') || '';
      }
    }
    var out = [];
    s.split('&').forEach(function (kv) {
      if (!kv) return;
      var i = kv.indexOf('=');
      out.push([decodeParam(i >= 0 ? kv.slice(0, i) : kv), i >= 0 ? decodeParam(kv.slice(i + 1)) : '']);
    });
    return out;
  }

  function size(el, attr, fallback) {
    var v = el.getAttribute(attr);
    if (!v) return fallback;
    return /^\d+$/.test(v) ? v + 'px' : v;
  }

  var instances = [];

  function adopt(el) {
    if (el.__videoio) return;
    // An <embed> inside an <object> (the usual pair) is handled with its object.
    var outer = el;
    for (var p = el.parentNode; p && p.tagName; p = p.parentNode) {
      if (p.tagName === 'OBJECT' && SWF.test(movieOf(p))) outer = p;
    }
    if (outer.__videoio) return;
    var inner = outer.tagName === 'OBJECT' ? outer.getElementsByTagName('embed')[0] : null;
    var objectID = outer.id || outer.getAttribute('name') || (inner && (inner.getAttribute('name') || inner.id)) || 'videoio' + (instances.length + 1);
    var names = [outer.id, outer.getAttribute('name'), inner && inner.getAttribute('name'), inner && inner.id]
      .filter(function (n, i, all) { return n && all.indexOf(n) === i; });
    var vars = flashVars(outer).concat(inner ? flashVars(inner) : []);

    var box = document.createElement('div');
    box.className = 'videoio';
    if (outer.id) box.id = outer.id;
    box.setAttribute('data-object-id', objectID);
    box.style.width = size(outer, 'width', '215px');
    box.style.height = size(outer, 'height', '138px');
    outer.__videoio = true;
    outer.parentNode.replaceChild(box, outer);

    var v = new VideoIO(box, objectID);
    ['setProperty', 'getProperty', 'callProperty'].forEach(function (m) {
      box[m] = function () { return v[m].apply(v, arguments); };
    });
    box.videoio = v;
    // getFlashMovie(name): window[name] on IE, document[name] elsewhere.
    names.forEach(function (n) {
      try {
        Object.defineProperty(document, n, { value: box, configurable: true, writable: true });
      } catch (_) { /* not a usable name */ }
      try {
        Object.defineProperty(window, n, { value: box, configurable: true, writable: true });
      } catch (_) { /* not a usable name */ }
    });
    instances.push(v);

    loadSDK().then(function () {
      vars.forEach(function (kv) {
        v.setProperty(kv[0], kv[1] === 'true' ? true : kv[1] === 'false' ? false : kv[1]);
      });
      setTimeout(function () { global('onCreationComplete', { objectID: objectID }); }, 0);
    }, function (e) {
      v._status('Cannot load switchboard.js: ' + (e.message || e));
      console.error('videoio.js: cannot load the Switchboard SDK', e);
    });
  }

  function scan(root) {
    var els = (root || document).querySelectorAll('object, embed');
    for (var i = 0; i < els.length; i++) {
      if (!els[i].isConnected || els[i].__videoio) continue;
      if (SWF.test(movieOf(els[i]))) adopt(els[i]);
    }
  }

  function global(name, arg) {
    var f = window[name];
    if (typeof f !== 'function') return;
    try {
      f(arg);
    } catch (e) {
      console.error('videoio.js: ' + name + ' threw', e);
    }
  }

  function decodeParam(s) {
    try {
      return decodeURIComponent(String(s).replace(/\+/g, ' '));
    } catch (_) {
      return s;
    }
  }

  function debug(msg) {
    if (config.debug) console.debug('videoio.js: ' + msg);
  }

  function start() {
    scan(document);
    new MutationObserver(function (records) {
      for (var i = 0; i < records.length; i++) {
        if (records[i].addedNodes.length) {
          scan(document);
          return;
        }
      }
    }).observe(document.documentElement, { childList: true, subtree: true });
  }

  window.VideoIOShim = { instances: instances, config: config, scan: scan };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
