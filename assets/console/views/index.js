/* The views, by the name the navigation and the saved state use. Each exports
 * mount(root, scope, view), and `admin = true` when only administrators may open it. */

import * as canned from "./canned.js";
import * as chat from "./chat.js";
import * as departments from "./departments.js";
import * as direct from "./direct.js";
import * as embed from "./embed.js";
import * as history from "./history.js";
import * as inbox from "./inbox.js";
import * as operators from "./operators.js";
import * as queue from "./queue.js";
import * as rules from "./rules.js";
import * as visitors from "./visitors.js";
import * as widget from "./widget.js";

export const VIEWS = {
  visitors,
  home: queue,
  chat,
  direct,
  inbox,
  history,
  canned,
  operators,
  departments,
  rules,
  widget,
  embed,
};
