/* The embed code: the widget's one tag, an image link, a plain link. */

import { h, I, icon, put } from "../dom.js";
import { appearanceKeys } from "../protocol.js";
import { store } from "../store.js";
import { button, panel, toast } from "../ui.js";

function block(title, text, code) {
  const pre = h("pre", { class: "code" }, h("code", { text: code }));
  const copied = () => toast("Copied.", "ok");
  const select = () => {
    const r = document.createRange();
    r.selectNodeContents(pre);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(r);
  };
  return h(
    "div",
    { class: "embed-block" },
    h("h3", { text: title }),
    h("p", { class: "muted", text }),
    pre,
    button(
      {
        class: "btn ghost small copy",
        onclick: () =>
          (navigator.clipboard ? navigator.clipboard.writeText(code) : Promise.reject()).then(
            copied,
            select,
          ),
      },
      icon(I.copy),
      "Copy",
    ),
  );
}

export function mount(root, scope) {
  scope.region(["publicUrl"], () => {
    const base = store.state.publicUrl.replace(/\/$/, "");
    // The image's words: the widget's default title (an attribute: no quotes, no markup).
    const title = appearanceKeys().title;
    const alt = ((title && title.default) || "").replace(/&/g, "&amp;").replace(/"/g, "&quot;");
    const box = panel("embed");
    box.append(
      block(
        "The widget (recommended)",
        "Paste this one tag into every page, just before </body>. It shows the Live Support button and opens the chat in the page.",
        '<script async src="' + base + '/widget.js"></script>',
      ),
      block(
        "An image link (no JavaScript)",
        "For e-mails or pages where scripts are not allowed: the image shows whether you are online and opens the chat page.",
        '<a href="' +
          base +
          '/chat" target="_blank" rel="noopener"><img src="' +
          base +
          '/api/button" alt="' +
          alt +
          '" width="236" height="56"></a>',
      ),
      block(
        "A plain link",
        "Opens the chat in its own window.",
        '<a href="' + base + '/chat" target="_blank" rel="noopener">Chat with us</a>',
      ),
      h(
        "p",
        { class: "muted" },
        "Try it on the demo site: ",
        h("a", { href: base + "/demo/", target: "_blank", rel: "noopener", text: base + "/demo/" }),
      ),
    );
    put(root, box);
  });
}
